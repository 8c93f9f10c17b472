/** Expiry commands: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, PERSIST. */
import type { Ctx } from './context.ts'
import type { Command } from './types.ts'

/** `unit` is 1000 for seconds, 1 for ms; `absolute` for the *AT forms. */
function expire (c: Ctx, name: string, unit: number, absolute: boolean): void {
  const n = c.num(2)
  if (n === null) { c.out.error('ERR value is not an integer or out of range'); return }
  const at = (absolute ? 0 : c.store.now) + n * unit
  if (!Number.isSafeInteger(at)) { c.out.error(`ERR invalid expire time in '${name}' command`); return }
  let nx = false; let xx = false; let gt = false; let lt = false
  for (let i = 3; i < c.argc; i++) {
    if (c.is(i, 'nx')) nx = true
    else if (c.is(i, 'xx')) xx = true
    else if (c.is(i, 'gt')) gt = true
    else if (c.is(i, 'lt')) lt = true
    else { c.out.error(`ERR Unsupported option ${c.str(i)}`); return }
  }
  const slot = c.store.find(c.buf, c.s(1), c.e(1))
  if (slot < 0) { c.out.int(0); return }
  const cur = c.store.seg.expireAt(c.store.off)
  const skip = (nx && cur !== 0) || (xx && cur === 0) || (gt && (cur === 0 || at <= cur)) || (lt && cur !== 0 && at >= cur)
  if (skip) { c.out.int(0); return }
  if (at <= c.store.now) c.store.removeAt(slot)
  else c.store.setExpire(at)
  c.out.int(1)
}

function ttl (c: Ctx, unit: number): void {
  if (c.store.find(c.buf, c.s(1), c.e(1)) < 0) { c.out.int(-2); return }
  const at = c.store.seg.expireAt(c.store.off)
  if (at === 0) { c.out.int(-1); return }
  const left = at - c.store.now
  c.out.int(unit === 1 ? left : Math.floor((left + 500) / 1000))
}

function persist (c: Ctx): void {
  if (c.store.find(c.buf, c.s(1), c.e(1)) < 0 || c.store.seg.expireAt(c.store.off) === 0) { c.out.int(0); return }
  c.store.setExpire(0)
  c.out.int(1)
}

const w = ['write', 'fast']
const r = ['readonly', 'fast']
export const expireCommands: Command[] = [
  { name: 'expire', arity: -3, flags: w, keys: [1, 1, 1], run: (c) => expire(c, 'expire', 1000, false) },
  { name: 'pexpire', arity: -3, flags: w, keys: [1, 1, 1], run: (c) => expire(c, 'pexpire', 1, false) },
  { name: 'expireat', arity: -3, flags: w, keys: [1, 1, 1], run: (c) => expire(c, 'expireat', 1000, true) },
  { name: 'pexpireat', arity: -3, flags: w, keys: [1, 1, 1], run: (c) => expire(c, 'pexpireat', 1, true) },
  { name: 'ttl', arity: 2, flags: r, keys: [1, 1, 1], run: (c) => ttl(c, 1000) },
  { name: 'pttl', arity: 2, flags: r, keys: [1, 1, 1], run: (c) => ttl(c, 1) },
  { name: 'persist', arity: 2, flags: w, keys: [1, 1, 1], run: persist }
]
