/**
 * More string commands: SETNX, SETEX, PSETEX, GETEX, GETDEL, MSETNX, INCRBYFLOAT, GETRANGE (SUBSTR),
 * SETRANGE. LCS is in lcs.ts.
 */
import { KEEP_TTL } from '../store.ts'
import { recordSize, STRING_RAW } from '../segments.ts'
import { OOM, SYNTAX, NOT_INT, WRONG, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { expireTime } from './expire.ts'
import { NOTIFY_GENERIC, NOTIFY_STRING, notify } from '../notify.ts'

/** Redis's proto-max-bulk-len: the longest string SETRANGE and APPEND may make. */
const MAX_STRING = 512 * 1024 * 1024

function replyValue (c: Ctx): void {
  const { seg, off } = c.store
  const vs = seg.valStart(off)
  c.out.bulk(seg.bytes, vs, vs + seg.valLen(off))
}

function expireArg (c: Ctx, i: number, unit: number, absolute: boolean, name: string): number | null {
  return expireTime(c, i, unit, absolute, name, true)
}

function setnx (c: Ctx): void {
  const slot = c.store.find(c.buf, c.s(1), c.e(1))
  if (slot >= 0) { c.out.int(0); return }
  if (c.store.write(slot, c.buf, c.s(1), c.e(1), c.buf, c.s(2), c.e(2), 0)) { c.out.int(1); notify(c, NOTIFY_STRING, 'set', 1) } else c.out.error(OOM)
}

/** SETEX key seconds value, PSETEX key ms value. */
function setex (c: Ctx, unit: number, name: string): void {
  const at = expireArg(c, 2, unit, false, name)
  if (at === null) return
  const slot = c.store.find(c.buf, c.s(1), c.e(1))
  if (c.store.write(slot, c.buf, c.s(1), c.e(1), c.buf, c.s(3), c.e(3), at)) {
    c.out.ok()
    notify(c, NOTIFY_STRING, 'set', 1)
    notify(c, NOTIFY_GENERIC, 'expire', 1)
  } else c.out.error(OOM)
}

/** GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST] */
function getex (c: Ctx): void {
  let at = KEEP_TTL
  for (let i = 2; i < c.argc; i++) {
    const abs = c.is(i, 'exat') || c.is(i, 'pxat')
    if ((c.is(i, 'ex') || c.is(i, 'px') || abs) && at === KEEP_TTL && i + 1 < c.argc) {
      const t = expireArg(c, i + 1, c.is(i, 'ex') || c.is(i, 'exat') ? 1000 : 1, abs, 'getex')
      if (t === null) return
      at = t
      i++
    } else if (c.is(i, 'persist') && at === KEEP_TTL) at = 0
    else { c.out.error(SYNTAX); return }
  }
  const slot = c.findString(1)
  if (slot === WRONG) return
  if (slot < 0) { c.out.nil(); return }
  replyValue(c)
  if (at === KEEP_TTL) return
  const had = c.store.seg.expireAt(c.store.off) !== 0
  if (at !== 0 && at <= c.store.now) { c.store.removeAt(slot); notify(c, NOTIFY_GENERIC, 'del', 1) } else {
    c.store.setExpire(at)
    if (at !== 0) notify(c, NOTIFY_GENERIC, 'expire', 1)
    else if (had) notify(c, NOTIFY_GENERIC, 'persist', 1)
  }
}

function getdel (c: Ctx): void {
  const slot = c.findString(1)
  if (slot === WRONG) return
  if (slot < 0) { c.out.nil(); return }
  replyValue(c)
  c.store.removeAt(slot)
  notify(c, NOTIFY_GENERIC, 'del', 1)
}

function msetnx (c: Ctx): void {
  if (c.argc % 2 === 0) { c.out.error("ERR wrong number of arguments for 'msetnx' command"); return }
  let need = 0
  for (let i = 1; i < c.argc; i += 2) {
    if (c.store.find(c.buf, c.s(i), c.e(i)) >= 0) { c.out.int(0); return }
    need += recordSize(c.e(i) - c.s(i), c.e(i + 1) - c.s(i + 1))
  }
  if (!c.store.fits(need)) { c.out.error(OOM); return }
  for (let i = 1; i < c.argc; i += 2) {
    // A key given twice: the last value wins, as in Redis.
    const slot = c.store.find(c.buf, c.s(i), c.e(i))
    c.store.write(slot, c.buf, c.s(i), c.e(i), c.buf, c.s(i + 1), c.e(i + 1), 0)
    notify(c, NOTIFY_STRING, 'set', i)
  }
  c.out.int(1)
}

const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?inf(inity)?$/i

/** Redis's string2ld: no spaces, no empty string, no NaN; null if not a float. */
export function parseFloatStrict (s: string): number | null {
  if (!FLOAT.test(s)) return null
  const lower = s.toLowerCase()
  if (lower.includes('inf')) return lower.startsWith('-') ? -Infinity : Infinity
  return Number(s)
}

/** A double as Redis writes INCRBYFLOAT's result: plain decimal digits, no exponent, no "-0". */
export function formatFloat (x: number): string {
  if (x === 0) return '0'
  if (Number.isInteger(x) && Math.abs(x) < 1e21) return BigInt(x).toString()
  const s = String(x)
  if (!s.includes('e')) return s
  // Tiny or huge: shortest round-trip digits, written out without the exponent.
  const [mant, exp] = s.split('e')
  const neg = mant.startsWith('-')
  const digits = mant.replace(/^-/, '').replace('.', '')
  const point = (mant.replace(/^-/, '').indexOf('.') + 1 || mant.replace(/^-/, '').length + 1) - 1 + Number(exp)
  const body = point <= 0 ? `0.${'0'.repeat(-point)}${digits}` : point >= digits.length ? digits + '0'.repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`
  return (neg ? '-' : '') + body
}

function incrbyfloat (c: Ctx): void {
  const by = parseFloatStrict(c.str(2))
  if (by === null) { c.out.error('ERR value is not a valid float'); return }
  const slot = c.findString(1)
  if (slot === WRONG) return
  let cur = 0
  if (slot >= 0) {
    const { seg, off } = c.store
    const vs = seg.valStart(off)
    const v = parseFloatStrict(seg.bytes.toString('latin1', vs, vs + seg.valLen(off)))
    if (v === null) { c.out.error('ERR value is not a valid float'); return }
    cur = v
  }
  const next = cur + by
  if (!Number.isFinite(next)) { c.out.error('ERR increment would produce NaN or Infinity'); return }
  const value = Buffer.from(formatFloat(next), 'latin1')
  c.store.find(c.buf, c.s(1), c.e(1))
  if (c.store.write(slot, c.buf, c.s(1), c.e(1), value, 0, value.length, KEEP_TTL)) { c.out.bulk(value, 0, value.length); notify(c, NOTIFY_STRING, 'incrbyfloat', 1) } else c.out.error(OOM)
}

/** GETRANGE key start end (and SUBSTR), with Redis's negative and out-of-range indexes. */
function getrange (c: Ctx): void {
  let start = c.num(2)
  let end = c.num(3)
  if (start === null || end === null) { c.out.error(NOT_INT); return }
  const slot = c.findString(1)
  if (slot === WRONG) return
  if (slot < 0) { c.out.bulkString(''); return }
  const { seg, off } = c.store
  const len = seg.valLen(off)
  if (start < 0 && end < 0 && start > end) { c.out.bulkString(''); return }
  if (start < 0) start = len + start
  if (end < 0) end = len + end
  if (start < 0) start = 0
  if (end < 0) end = 0
  if (end >= len) end = len - 1
  if (len === 0 || start > end) { c.out.bulkString(''); return }
  const vs = seg.valStart(off)
  c.out.bulk(seg.bytes, vs + start, vs + end + 1)
}

function setrange (c: Ctx): void {
  const offset = c.num(2)
  if (offset === null) { c.out.error(NOT_INT); return }
  if (offset < 0) { c.out.error('ERR offset is out of range'); return }
  const slot = c.findString(1)
  if (slot === WRONG) return
  const vlen = c.e(3) - c.s(3)
  const store = c.store
  const old = slot < 0 ? 0 : store.seg.valLen(store.off)
  if (vlen === 0) { c.out.int(old); return }
  if (offset + vlen > MAX_STRING) { c.out.error('ERR string exceeds maximum allowed size (proto-max-bulk-len)'); return }
  const value = Buffer.alloc(Math.max(old, offset + vlen))
  if (slot >= 0) store.seg.bytes.copy(value, 0, store.seg.valStart(store.off), store.seg.valStart(store.off) + old)
  c.buf.copy(value, offset, c.s(3), c.e(3))
  if (store.write(slot, c.buf, c.s(1), c.e(1), value, 0, value.length, KEEP_TTL, STRING_RAW)) { c.out.int(value.length); notify(c, NOTIFY_STRING, 'setrange', 1) } else c.out.error(OOM)
}

const BIT_OFFSET = 'ERR bit offset is not an integer or out of range'

/** Argument i as a bit offset within a 512 MiB string, or null after replying Redis's error. */
function bitOffset (c: Ctx, i: number): number | null {
  const n = c.num(i)
  if (n === null || n < 0 || n >= MAX_STRING * 8) { c.out.error(BIT_OFFSET); return null }
  return n
}

function getbit (c: Ctx): void {
  const bit = bitOffset(c, 2)
  if (bit === null) return
  const slot = c.findString(1)
  if (slot === WRONG) return
  const byte = bit >>> 3
  if (slot < 0 || byte >= c.store.seg.valLen(c.store.off)) { c.out.int(0); return }
  c.out.int((c.store.seg.bytes[c.store.seg.valStart(c.store.off) + byte] >> (7 - (bit & 7))) & 1)
}

function setbit (c: Ctx): void {
  const bit = bitOffset(c, 2)
  if (bit === null) return
  if (!c.is(3, '0') && !c.is(3, '1')) { c.out.error('ERR bit is not an integer or out of range'); return }
  const slot = c.findString(1)
  if (slot === WRONG) return
  const store = c.store
  const byte = bit >>> 3
  const old = slot < 0 ? 0 : store.seg.valLen(store.off)
  const value = Buffer.alloc(Math.max(old, byte + 1))
  if (slot >= 0) store.seg.bytes.copy(value, 0, store.seg.valStart(store.off), store.seg.valStart(store.off) + old)
  const mask = 1 << (7 - (bit & 7))
  const was = (value[byte] & mask) !== 0 ? 1 : 0
  if (c.is(3, '1')) value[byte] |= mask
  else value[byte] &= ~mask
  if (store.write(slot, c.buf, c.s(1), c.e(1), value, 0, value.length, KEEP_TTL, STRING_RAW)) { c.out.int(was); notify(c, NOTIFY_STRING, 'setbit', 1) } else c.out.error(OOM)
}

const write = ['write', 'denyoom']
const ro = ['readonly']
export const moreStringCommands: Command[] = [
  { name: 'setnx', arity: 3, flags: [...write, 'fast'], keys: [1, 1, 1], run: setnx },
  { name: 'setex', arity: 4, flags: write, keys: [1, 1, 1], run: (c) => setex(c, 1000, 'setex') },
  { name: 'psetex', arity: 4, flags: write, keys: [1, 1, 1], run: (c) => setex(c, 1, 'psetex') },
  { name: 'getex', arity: -2, flags: ['write', 'fast'], keys: [1, 1, 1], run: getex },
  { name: 'getdel', arity: 2, flags: ['write', 'fast'], keys: [1, 1, 1], run: getdel },
  { name: 'msetnx', arity: -3, flags: write, keys: [1, -1, 2], run: msetnx },
  { name: 'incrbyfloat', arity: 3, flags: [...write, 'fast'], keys: [1, 1, 1], run: incrbyfloat },
  { name: 'getrange', arity: 4, flags: ro, keys: [1, 1, 1], run: getrange },
  { name: 'substr', arity: 4, flags: ro, keys: [1, 1, 1], run: getrange },
  { name: 'setrange', arity: 4, flags: write, keys: [1, 1, 1], run: setrange },
  { name: 'getbit', arity: 3, flags: [...ro, 'fast'], keys: [1, 1, 1], run: getbit },
  { name: 'setbit', arity: 4, flags: write, keys: [1, 1, 1], run: setbit }
]
