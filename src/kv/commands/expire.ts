/** Expiry commands: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (NX/XX/GT/LT), TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST. */
import { NOT_INT, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { NOTIFY_GENERIC, notify } from '../notify.ts'

const MAX64 = 2n ** 63n - 1n
const MIN64 = -(2n ** 63n)

/**
 * Argument i as an expiry time in ms since the epoch, following Redis's overflow rules (`unit` 1000
 * for seconds, 1 for ms; `absolute` for the *AT forms): null after replying NOT_INT or
 * "invalid expire time" for `name`. `positive` (SET, SETEX, GETEX) also refuses n <= 0.
 */
export function expireTime (c: Ctx, i: number, unit: number, absolute: boolean, name: string, positive: boolean): number | null {
  const n = c.int(i)
  if (n === null) { c.out.error(NOT_INT); return null }
  const invalid = (): null => { c.out.error(`ERR invalid expire time in '${name}' command`); return null }
  if (positive && n <= 0n) return invalid()
  const u = BigInt(unit)
  if (n > MAX64 / u || n < MIN64 / u) return invalid()
  let at = n * u
  if (!absolute) {
    const now = BigInt(c.store.now)
    if ((at > 0n && now > MAX64 - at) || (at < 0n && now < MIN64 - at)) return invalid()
    at += now
  }
  return Number(at)
}

function expire (c: Ctx, name: string, unit: number, absolute: boolean): void {
  let nx = false; let xx = false; let gt = false; let lt = false
  for (let i = 3; i < c.argc; i++) {
    if (c.is(i, 'nx')) nx = true
    else if (c.is(i, 'xx')) xx = true
    else if (c.is(i, 'gt')) gt = true
    else if (c.is(i, 'lt')) lt = true
    else { c.out.error(`ERR Unsupported option ${c.str(i)}`); return }
  }
  if (nx && (xx || gt || lt)) { c.out.error('ERR NX and XX, GT or LT options at the same time are not compatible'); return }
  if (gt && lt) { c.out.error('ERR GT and LT options at the same time are not compatible'); return }
  const at = expireTime(c, 2, unit, absolute, name, false)
  if (at === null) return
  const slot = c.store.find(c.buf, c.s(1), c.e(1))
  if (slot < 0) { c.out.int(0); return }
  const cur = c.store.seg.expireAt(c.store.off)
  // A key without a TTL counts as never expiring: GT never applies to it, LT always does.
  const skip = (nx && cur !== 0) || (xx && cur === 0) || (gt && (cur === 0 || at <= cur)) || (lt && cur !== 0 && at >= cur)
  if (skip) { c.out.int(0); return }
  if (at <= c.store.now) { c.store.removeAt(slot); notify(c, NOTIFY_GENERIC, 'del', 1) } else { c.store.setExpire(at); notify(c, NOTIFY_GENERIC, 'expire', 1) }
  c.out.int(1)
}

function ttl (c: Ctx, unit: number): void {
  if (c.store.find(c.buf, c.s(1), c.e(1)) < 0) { c.out.int(-2); return }
  const at = c.store.seg.expireAt(c.store.off)
  if (at === 0) { c.out.int(-1); return }
  const left = Math.max(0, at - c.store.now)
  c.out.int(unit === 1 ? left : Math.floor((left + 500) / 1000))
}

/** EXPIRETIME, PEXPIRETIME: the absolute time, -1 without a TTL, -2 without the key. */
function expiretime (c: Ctx, unit: number): void {
  if (c.store.find(c.buf, c.s(1), c.e(1)) < 0) { c.out.int(-2); return }
  const at = c.store.seg.expireAt(c.store.off)
  c.out.int(at === 0 ? -1 : Math.floor(at / unit))
}

function persist (c: Ctx): void {
  if (c.store.find(c.buf, c.s(1), c.e(1)) < 0 || c.store.seg.expireAt(c.store.off) === 0) { c.out.int(0); return }
  c.store.setExpire(0)
  c.out.int(1)
  notify(c, NOTIFY_GENERIC, 'persist', 1)
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
  { name: 'expiretime', arity: 2, flags: r, keys: [1, 1, 1], run: (c) => expiretime(c, 1000) },
  { name: 'pexpiretime', arity: 2, flags: r, keys: [1, 1, 1], run: (c) => expiretime(c, 1) },
  { name: 'persist', arity: 2, flags: w, keys: [1, 1, 1], run: persist }
]
