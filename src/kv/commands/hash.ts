/** Hash commands. A hash is a Dict of HASH entries: [u32 field len][u32 value len][field][value]. */
import { HASH, keyOf, kArena, kStart, kEnd } from '../types/dict.ts'
import { offOf } from '../types/heap.ts'
import { copyBytes } from '../bytes.ts'
import { open, create, dropIfEmpty, types, hashOf, scanArgs, formatFloat, parseFloatArg, T_HASH } from '../types/access.ts'
import { NOT_INT, WRONG_ARGS, parseInteger, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { NOTIFY_GENERIC, NOTIFY_HASH, notify } from '../notify.ts'

const HDR = 3

/** Sets field arg f to value arg v in hash `hd`; returns 1 if the field is new. */
function setField (c: Ctx, hd: number, f: number, v: number, nx: boolean): number {
  const t = types(c)
  const d = t.dict
  const fs = c.s(f); const fe = c.e(f); const vs = c.s(v); const ve = c.e(v)
  const hash = hashOf(c, c.buf, fs, fe)
  if (d.find(hd, HASH, hash, c.buf, fs, fe)) {
    if (!nx) replaceValue(c, hd, d.slot, d.ref, c.buf, vs, ve)
    return 0
  }
  d.insert(hd, hash, newEntry(c, c.buf, fs, fe, c.buf, vs, ve))
  return 1
}

function newEntry (c: Ctx, fb: Buffer, fs: number, fe: number, vb: Buffer, vs: number, ve: number): number {
  const h = types(c).heap
  const ref = h.alloc(8 + (fe - fs) + (ve - vs))
  const o = offOf(ref)
  const u = h.u32[ref >>> 23]
  const b = h.b[ref >>> 23]
  u[o >>> 2] = fe - fs
  u[(o >>> 2) + 1] = ve - vs
  copyBytes(b, o + 8, fb, fs, fe)
  copyBytes(b, o + 8 + (fe - fs), vb, vs, ve)
  return ref
}

/** Points the entry in `slot` at a value of `vb[vs, ve)`, in place when the block class allows. */
function replaceValue (c: Ctx, hd: number, slot: number, ref: number, vb: Buffer, vs: number, ve: number): void {
  const t = types(c)
  const h = t.heap
  const u = h.u32[ref >>> 23]
  const w = offOf(ref) >>> 2
  const flen = u[w]
  if (u[w + 1] === ve - vs) {
    copyBytes(h.b[ref >>> 23], offOf(ref) + 8 + flen, vb, vs, ve)
    return
  }
  const next = newEntry(c, h.b[ref >>> 23], offOf(ref) + 8, offOf(ref) + 8 + flen, vb, vs, ve)
  h.release(ref, 8 + flen + u[w + 1])
  t.dict.setRef(hd, slot, next)
}

/** Value position of entry `ref`: sets vA (arena), vS, vE. */
let vA = 0; let vS = 0; let vE = 0
function valueOf (c: Ctx, ref: number): void {
  const h = types(c).heap
  const u = h.u32[ref >>> 23]
  const o = offOf(ref)
  vA = ref >>> 23
  vS = o + 8 + u[o >>> 2]
  vE = vS + u[(o >>> 2) + 1]
}

function replyField (c: Ctx, ref: number): void {
  keyOf(types(c).heap, HASH, ref)
  c.out.bulk(types(c).heap.b[kArena], kStart, kEnd)
}
function replyValue (c: Ctx, ref: number): void {
  valueOf(c, ref)
  c.out.bulk(types(c).heap.b[vA], vS, vE)
}

/** Opens or creates argument 1's hash for writing; -1 after an error reply. */
function openForWrite (c: Ctx): number {
  let hd = open(c, 1, T_HASH)
  if (hd !== 0) return hd
  hd = types(c).dict.create(HDR)
  if (!create(c, 1, T_HASH, hd)) { types(c).dict.destroy(hd, HASH, HDR); return -1 }
  return hd
}

function hset (c: Ctx, multi: boolean): void {
  if (c.argc % 2 !== 0) { c.out.error(WRONG_ARGS(multi ? 'hmset' : 'hset')); return }
  const hd = openForWrite(c)
  if (hd < 0) return
  let added = 0
  for (let i = 2; i < c.argc; i += 2) added += setField(c, hd, i, i + 1, false)
  if (multi) c.out.ok()
  else c.out.int(added)
  notify(c, NOTIFY_HASH, 'hset', 1)
}

function hsetnx (c: Ctx): void {
  const hd = openForWrite(c)
  if (hd < 0) return
  const set = setField(c, hd, 2, 3, true)
  c.out.int(set)
  if (set !== 0) notify(c, NOTIFY_HASH, 'hset', 1)
}

/** Finds field argument f in hash `hd`: the entry ref or 0. */
function field (c: Ctx, hd: number, f: number): number {
  const d = types(c).dict
  const s = c.s(f); const e = c.e(f)
  return d.find(hd, HASH, hashOf(c, c.buf, s, e), c.buf, s, e) ? d.ref : 0
}

function hget (c: Ctx): void {
  const hd = open(c, 1, T_HASH)
  if (hd < 0) return
  const ref = hd === 0 ? 0 : field(c, hd, 2)
  if (ref === 0) c.out.nil()
  else replyValue(c, ref)
}

function hmget (c: Ctx): void {
  const hd = open(c, 1, T_HASH)
  if (hd < 0) return
  c.out.arrayHeader(c.argc - 2)
  for (let i = 2; i < c.argc; i++) {
    const ref = hd === 0 ? 0 : field(c, hd, i)
    if (ref === 0) c.out.nil()
    else replyValue(c, ref)
  }
}

function hdel (c: Ctx): void {
  const hd = open(c, 1, T_HASH)
  if (hd <= 0) { if (hd === 0) c.out.int(0); return }
  const t = types(c)
  let n = 0
  for (let i = 2; i < c.argc; i++) {
    const ref = field(c, hd, i)
    if (ref === 0) continue
    t.dict.removeSlot(hd, t.dict.slot)
    valueOf(c, ref)
    t.heap.release(ref, 8 + (vE - offOf(ref) - 8))
    n++
  }
  if (n > 0) notify(c, NOTIFY_HASH, 'hdel', 1)
  if (t.dict.count(hd) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c, 1, t.dict.count(hd))
  c.out.int(n)
}

function hlen (c: Ctx): void {
  const hd = open(c, 1, T_HASH)
  if (hd >= 0) c.out.int(hd === 0 ? 0 : types(c).dict.count(hd))
}

function hstrlen (c: Ctx): void {
  const hd = open(c, 1, T_HASH)
  if (hd < 0) return
  const ref = hd === 0 ? 0 : field(c, hd, 2)
  if (ref === 0) { c.out.int(0); return }
  valueOf(c, ref)
  c.out.int(vE - vS)
}

function hexists (c: Ctx): void {
  const hd = open(c, 1, T_HASH)
  if (hd >= 0) c.out.int(hd !== 0 && field(c, hd, 2) !== 0 ? 1 : 0)
}

/** HKEYS (1), HVALS (2), HGETALL (3). */
function hgetall (c: Ctx, what: number): void {
  const hd = open(c, 1, T_HASH)
  if (hd < 0) return
  if (hd === 0) { if (what === 3) c.out.map(0); else c.out.arrayHeader(0); return }
  const d = types(c).dict
  const n = d.count(hd)
  if (what === 3) c.out.map(n); else c.out.arrayHeader(n)
  const cap = d.cap(hd)
  for (let i = 0; i < cap; i++) {
    const ref = d.at(hd, i)
    if (ref === 0) continue
    if ((what & 1) !== 0) replyField(c, ref)
    if ((what & 2) !== 0) replyValue(c, ref)
  }
}

const MIN64 = -(2n ** 63n)
const MAX64 = 2n ** 63n - 1n

/** Writes `text` as field argument 2's new value (creating the hash and field as needed). */
function storeNumber (c: Ctx, hd: number, ref: number, text: string): void {
  const t = types(c)
  const v = Buffer.from(text, 'latin1')
  if (ref !== 0) { replaceValue(c, hd, t.dict.slot, ref, v, 0, v.length); return }
  const fs = c.s(2); const fe = c.e(2)
  t.dict.insert(hd, hashOf(c, c.buf, fs, fe), newEntry(c, c.buf, fs, fe, v, 0, v.length))
}

function hincrby (c: Ctx): void {
  const by = c.int(3)
  if (by === null) { c.out.error(NOT_INT); return }
  const hd = openForWrite(c)
  if (hd < 0) return
  const ref = field(c, hd, 2)
  let cur = 0n
  if (ref !== 0) {
    valueOf(c, ref)
    const v = parseInteger(types(c).heap.b[vA], vS, vE)
    if (v === null) { c.out.error('ERR hash value is not an integer'); return }
    cur = v
  }
  const next = cur + by
  if (next < MIN64 || next > MAX64) { c.out.error('ERR increment or decrement would overflow'); return }
  storeNumber(c, hd, ref, next.toString())
  c.out.int(next)
  notify(c, NOTIFY_HASH, 'hincrby', 1)
}

function hincrbyfloat (c: Ctx): void {
  const by = parseFloatArg(c.buf, c.s(3), c.e(3))
  if (Number.isNaN(by)) { c.out.error('ERR value is not a valid float'); return }
  if (!Number.isFinite(by)) { c.out.error('ERR value is NaN or Infinity'); return }
  const hd = openForWrite(c)
  if (hd < 0) return
  const ref = field(c, hd, 2)
  let cur = 0
  if (ref !== 0) {
    valueOf(c, ref)
    cur = parseFloatArg(types(c).heap.b[vA], vS, vE)
    if (Number.isNaN(cur)) { c.out.error('ERR hash value is not a float'); return }
  }
  const next = cur + by
  if (!Number.isFinite(next)) { c.out.error('ERR increment would produce NaN or Infinity'); return }
  const text = formatFloat(next)
  storeNumber(c, hd, ref, text)
  c.out.bulkString(text)
  notify(c, NOTIFY_HASH, 'hincrbyfloat', 1)
}

function hrandfield (c: Ctx): void {
  const hd = open(c, 1, T_HASH)
  if (hd < 0) return
  const d = types(c).dict
  if (c.argc === 2) {
    if (hd === 0) c.out.nil()
    else replyField(c, d.at(hd, d.randomSlot(hd)))
    return
  }
  const big = c.int(2)
  if (big === null) { c.out.error(NOT_INT); return }
  // Redis 7.2's ranges: -LONG_MAX..LONG_MAX, and half that WITHVALUES (the reply doubles it).
  if (big === -(2n ** 63n)) { c.out.error('ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807'); return }
  const withValues = c.argc === 4 && c.is(3, 'withvalues')
  if (c.argc > 4 || (c.argc === 4 && !withValues)) { c.out.error('ERR syntax error'); return }
  if (withValues && (big < -(2n ** 62n - 1n) || big > 2n ** 62n - 1n)) { c.out.error('ERR value is out of range'); return }
  const count = c.num(2)
  if (count === null || count < -Number.MAX_SAFE_INTEGER / 2 || count > Number.MAX_SAFE_INTEGER / 2) { c.out.error(NOT_INT); return }
  const refs = hd === 0 ? [] : pickRandom(c, hd, count)
  // RESP3 pairs each field with its value; RESP2 is one flat array.
  const pairs = withValues && c.out.resp === 3
  c.out.arrayHeader(withValues && !pairs ? refs.length * 2 : refs.length)
  for (const ref of refs) {
    if (pairs) c.out.arrayHeader(2)
    replyField(c, ref)
    if (withValues) replyValue(c, ref)
  }
}

/** Random entries for a count argument: negative allows repeats, positive gives distinct ones. */
export function pickRandom (c: Ctx, hd: number, count: number): number[] {
  const d = types(c).dict
  const out: number[] = []
  if (count < 0) {
    for (let i = 0; i < -count; i++) out.push(d.at(hd, d.randomSlot(hd)))
    return out
  }
  const n = d.count(hd)
  if (count >= n) {
    const cap = d.cap(hd)
    for (let i = 0; i < cap; i++) if (d.at(hd, i) !== 0) out.push(d.at(hd, i))
    return out
  }
  const seen = new Set<number>()
  while (seen.size < count) seen.add(d.randomSlot(hd))
  for (const i of seen) out.push(d.at(hd, i))
  return out
}

function hscan (c: Ctx): void {
  const o = scanArgs(c, 2)
  if (o === null) return
  const hd = open(c, 1, T_HASH)
  if (hd < 0) return
  const refs: number[] = []
  let cursor = 0
  if (hd !== 0) {
    const t = types(c)
    cursor = o.cursor
    let steps = 0
    do {
      cursor = t.dict.scanStep(hd, cursor, (ref) => {
        keyOf(t.heap, HASH, ref)
        if (o.glob === null || o.glob.matches(t.heap.b[kArena], kStart, kEnd)) refs.push(ref)
      })
    } while (cursor !== 0 && ++steps < o.count)
  }
  c.out.arrayHeader(2)
  c.out.bulkString(String(cursor))
  c.out.arrayHeader(refs.length * 2)
  for (const ref of refs) { replyField(c, ref); replyValue(c, ref) }
}

const w = ['write', 'denyoom', 'fast']
const r = ['readonly', 'fast']
export const hashCommands: Command[] = [
  { name: 'hset', arity: -4, flags: w, keys: [1, 1, 1], run: (c) => hset(c, false) },
  { name: 'hmset', arity: -4, flags: w, keys: [1, 1, 1], run: (c) => hset(c, true) },
  { name: 'hsetnx', arity: 4, flags: w, keys: [1, 1, 1], run: hsetnx },
  { name: 'hget', arity: 3, flags: r, keys: [1, 1, 1], run: hget },
  { name: 'hmget', arity: -3, flags: r, keys: [1, 1, 1], run: hmget },
  { name: 'hdel', arity: -3, flags: ['write', 'fast'], keys: [1, 1, 1], run: hdel },
  { name: 'hlen', arity: 2, flags: r, keys: [1, 1, 1], run: hlen },
  { name: 'hstrlen', arity: 3, flags: r, keys: [1, 1, 1], run: hstrlen },
  { name: 'hexists', arity: 3, flags: r, keys: [1, 1, 1], run: hexists },
  { name: 'hkeys', arity: 2, flags: ['readonly'], keys: [1, 1, 1], run: (c) => hgetall(c, 1) },
  { name: 'hvals', arity: 2, flags: ['readonly'], keys: [1, 1, 1], run: (c) => hgetall(c, 2) },
  { name: 'hgetall', arity: 2, flags: ['readonly'], keys: [1, 1, 1], run: (c) => hgetall(c, 3) },
  { name: 'hincrby', arity: 4, flags: w, keys: [1, 1, 1], run: hincrby },
  { name: 'hincrbyfloat', arity: 4, flags: w, keys: [1, 1, 1], run: hincrbyfloat },
  { name: 'hrandfield', arity: -2, flags: ['readonly'], keys: [1, 1, 1], run: hrandfield },
  { name: 'hscan', arity: -3, flags: ['readonly'], keys: [1, 1, 1], run: hscan }
]
