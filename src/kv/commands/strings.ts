/** String commands: GET, SET and friends, INCR family, APPEND, STRLEN, MGET, MSET. */
import { KEEP_TTL } from '../store.ts'
import { recordSize, STRING_RAW } from '../segments.ts'
import { OOM, SYNTAX, NOT_INT, WRONG, parseInteger, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { expireTime } from './expire.ts'
import { NOTIFY_GENERIC, NOTIFY_STRING, notify } from '../notify.ts'

function replyValue (c: Ctx): void {
  const { seg, off } = c.store
  const vs = seg.valStart(off)
  c.out.bulk(seg.bytes, vs, vs + seg.valLen(off))
}

function get (c: Ctx): void {
  const slot = c.findString(1)
  if (slot === -1) c.out.nil()
  else if (slot >= 0) replyValue(c)
}

interface SetOptions { at: number, nx: boolean, xx: boolean, get: boolean }

/** Parses SET's options from argument 3 on; replies with the error and returns null if bad. */
function setOptions (c: Ctx): SetOptions | null {
  const o: SetOptions = { at: 0, nx: false, xx: false, get: false }
  let expiry = false
  for (let i = 3; i < c.argc; i++) {
    if (c.is(i, 'nx') && !o.xx) o.nx = true
    else if (c.is(i, 'xx') && !o.nx) o.xx = true
    else if (c.is(i, 'get')) o.get = true
    else if (c.is(i, 'keepttl') && !expiry) { o.at = KEEP_TTL; expiry = true }
    else if ((c.is(i, 'ex') || c.is(i, 'px') || c.is(i, 'exat') || c.is(i, 'pxat')) && !expiry && i + 1 < c.argc) {
      const at = expireTime(c, i + 1, c.is(i, 'ex') || c.is(i, 'exat') ? 1000 : 1, c.is(i, 'exat') || c.is(i, 'pxat'), 'set', true)
      if (at === null) return null
      o.at = at
      expiry = true
      i++
    } else { c.out.error(SYNTAX); return null }
  }
  return o
}

function set (c: Ctx): void {
  const store = c.store
  const ks = c.s(1)
  const ke = c.e(1)
  if (c.argc === 3) {
    const slot = store.find(c.buf, ks, ke)
    if (store.write(slot, c.buf, ks, ke, c.buf, c.s(2), c.e(2), 0)) { c.out.ok(); notify(c, NOTIFY_STRING, 'set', 1) } else c.out.error(OOM)
    return
  }
  const o = setOptions(c)
  if (o === null) return
  const mark = c.out.pos
  const slot = o.get ? c.findString(1) : store.find(c.buf, ks, ke)
  if (slot === WRONG) return
  if (o.get) {
    if (slot < 0) c.out.nil()
    else replyValue(c)
  }
  if ((o.nx && slot >= 0) || (o.xx && slot < 0)) {
    if (!o.get) c.out.nil()
    return
  }
  if (!store.write(slot, c.buf, ks, ke, c.buf, c.s(2), c.e(2), o.at)) {
    c.out.rewind(mark)
    c.out.error(OOM)
    return
  }
  if (!o.get) c.out.ok()
  notify(c, NOTIFY_STRING, 'set', 1)
  if (o.at > 0) notify(c, NOTIFY_GENERIC, 'expire', 1)
}

function getset (c: Ctx): void {
  const slot = c.findString(1)
  if (slot === WRONG) return
  const mark = c.out.pos
  if (slot < 0) c.out.nil()
  else replyValue(c)
  if (!c.store.write(slot, c.buf, c.s(1), c.e(1), c.buf, c.s(2), c.e(2), 0)) {
    c.out.rewind(mark)
    c.out.error(OOM)
  } else notify(c, NOTIFY_STRING, 'set', 1)
}

function append (c: Ctx): void {
  const store = c.store
  const slot = c.findString(1)
  if (slot === WRONG) return
  let value: Buffer
  if (slot < 0) value = c.copy(2)
  else {
    const vs = store.seg.valStart(store.off)
    const old = store.seg.bytes.subarray(vs, vs + store.seg.valLen(store.off))
    value = Buffer.concat([old, c.buf.subarray(c.s(2), c.e(2))])
  }
  if (store.write(slot, c.buf, c.s(1), c.e(1), value, 0, value.length, KEEP_TTL, STRING_RAW)) { c.out.int(value.length); notify(c, NOTIFY_STRING, 'append', 1) } else c.out.error(OOM)
}

function strlen (c: Ctx): void {
  const slot = c.findString(1)
  if (slot !== WRONG) c.out.int(slot < 0 ? 0 : c.store.seg.valLen(c.store.off))
}

function mget (c: Ctx): void {
  c.out.arrayHeader(c.argc - 1)
  for (let i = 1; i < c.argc; i++) {
    // MGET answers nil for a key of another type, as Redis does.
    if (c.store.find(c.buf, c.s(i), c.e(i)) < 0 || c.store.typeOf() !== 0) c.out.nil()
    else replyValue(c)
  }
}

function mset (c: Ctx): void {
  if (c.argc % 2 === 0) { c.out.error("ERR wrong number of arguments for 'mset' command"); return }
  let need = 0
  for (let i = 1; i < c.argc; i += 2) need += recordSize(c.e(i) - c.s(i), c.e(i + 1) - c.s(i + 1))
  if (!c.store.fits(need)) { c.out.error(OOM); return }
  for (let i = 1; i < c.argc; i += 2) {
    const slot = c.store.find(c.buf, c.s(i), c.e(i))
    c.store.write(slot, c.buf, c.s(i), c.e(i), c.buf, c.s(i + 1), c.e(i + 1), 0)
    notify(c, NOTIFY_STRING, 'set', i)
  }
  c.out.ok()
}

const MIN64 = -(2n ** 63n)
const MAX64 = 2n ** 63n - 1n

/** INCR, DECR, INCRBY, DECRBY: `sign` is +1 or -1, `byArg` the increment's argument or 0 for 1. */
function incrBy (c: Ctx, sign: bigint, byArg: number): void {
  const by = byArg === 0 ? 1n : c.int(byArg)
  if (by === null) { c.out.error(NOT_INT); return }
  const store = c.store
  const slot = c.findString(1)
  if (slot === WRONG) return
  let current = 0n
  if (slot >= 0) {
    const vs = store.seg.valStart(store.off)
    const v = parseInteger(store.seg.bytes, vs, vs + store.seg.valLen(store.off))
    if (v === null) { c.out.error(NOT_INT); return }
    current = v
  }
  const next = current + sign * by
  if (next < MIN64 || next > MAX64) { c.out.error('ERR increment or decrement would overflow'); return }
  const value = Buffer.from(next.toString(), 'latin1')
  if (store.write(slot, c.buf, c.s(1), c.e(1), value, 0, value.length, KEEP_TTL)) { c.out.int(next); notify(c, NOTIFY_STRING, 'incrby', 1) } else c.out.error(OOM)
}

const write = ['write', 'denyoom']
export const stringCommands: Command[] = [
  { name: 'get', arity: 2, flags: ['readonly', 'fast'], keys: [1, 1, 1], run: get },
  { name: 'set', arity: -3, flags: write, keys: [1, 1, 1], run: set },
  { name: 'getset', arity: 3, flags: write, keys: [1, 1, 1], run: getset },
  { name: 'append', arity: 3, flags: write, keys: [1, 1, 1], run: append },
  { name: 'strlen', arity: 2, flags: ['readonly', 'fast'], keys: [1, 1, 1], run: strlen },
  { name: 'mget', arity: -2, flags: ['readonly', 'fast'], keys: [1, -1, 1], run: mget },
  { name: 'mset', arity: -3, flags: write, keys: [1, -1, 2], run: mset },
  { name: 'incr', arity: 2, flags: write, keys: [1, 1, 1], run: (c) => incrBy(c, 1n, 0) },
  { name: 'decr', arity: 2, flags: write, keys: [1, 1, 1], run: (c) => incrBy(c, -1n, 0) },
  { name: 'incrby', arity: 3, flags: write, keys: [1, 1, 1], run: (c) => incrBy(c, 1n, 2) },
  { name: 'decrby', arity: 3, flags: write, keys: [1, 1, 1], run: (c) => incrBy(c, -1n, 2) }
]
