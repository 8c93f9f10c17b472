/**
 * OBJECT ENCODING for collections: the encoding Redis 7.2 would use for the same contents under the
 * configured thresholds (hash-max-listpack-*, set-max-intset-entries, set-max-listpack-*,
 * list-max-listpack-size, zset-max-listpack-*). Our own layout (dicts, list nodes, zset packs or
 * skiplists) is not Redis's, so the answer is decided from the contents when asked, reading at most
 * a threshold's worth of entries. Unlike Redis, a hash, set or zset that shrinks back under the
 * thresholds reports the small encoding again (Redis 7.2 lists do convert back too).
 */
import type { Store } from '../store.ts'
import type { Segment } from '../segments.ts'
import { typesOf, isHeapRecord, recordRef } from './registry.ts'
import { HASH, SET, keyOf, kArena, kStart, kEnd } from './dict.ts'
import { eA, eS, eE } from './list.ts'
import { mS, mE } from './zset.ts'

/** A threshold parameter's current value. */
export type ConfigOf = (name: string) => number

/** Redis's answer for the collection of RDB type `type` at seg/off. */
export function collectionEncoding (store: Store, seg: Segment, off: number, type: number, cfg: ConfigOf): string {
  if (!isHeapRecord(seg, off) || !typesOf(store).heap.valid(recordRef(seg, off))) return 'unknown'
  const ref = recordRef(seg, off)
  if (type === 1) return listEncoding(store, ref, cfg('list-max-listpack-size'))
  if (type === 3) return zsetEncoding(store, ref, cfg('zset-max-listpack-entries'), cfg('zset-max-listpack-value'))
  if (type === 4) return hashEncoding(store, ref, cfg('hash-max-listpack-entries'), cfg('hash-max-listpack-value'))
  return setEncoding(store, ref, cfg)
}

function hashEncoding (store: Store, ref: number, entries: number, value: number): string {
  const t = typesOf(store)
  if (t.dict.count(ref) > entries) return 'hashtable'
  const cap = t.dict.cap(ref)
  for (let i = 0; i < cap; i++) {
    const e = t.dict.at(ref, i)
    if (e === 0) continue
    keyOf(t.heap, HASH, e)
    const vlen = t.heap.u32[kArena][(kStart - 4) >>> 2]
    if (kEnd - kStart > value || vlen > value) return 'hashtable'
  }
  return 'listpack'
}

function setEncoding (store: Store, ref: number, cfg: ConfigOf): string {
  const t = typesOf(store)
  const n = t.dict.count(ref)
  const lpEntries = cfg('set-max-listpack-entries')
  if (n > Math.max(cfg('set-max-intset-entries'), lpEntries)) return 'hashtable'
  const value = cfg('set-max-listpack-value')
  let ints = true
  let short = true
  const cap = t.dict.cap(ref)
  for (let i = 0; i < cap && (ints || short); i++) {
    const e = t.dict.at(ref, i)
    if (e === 0) continue
    keyOf(t.heap, SET, e)
    if (ints && !isInt64(t.heap.b[kArena], kStart, kEnd)) ints = false
    if (kEnd - kStart > value) short = false
  }
  if (ints && n <= cfg('set-max-intset-entries')) return 'intset'
  return short && n <= lpEntries ? 'listpack' : 'hashtable'
}

/** list-max-listpack-size: a positive count, or -1..-5 for 4..64 KiB per listpack. */
function listEncoding (store: Store, ref: number, size: number): string {
  const l = typesOf(store).lists
  const n = l.count(ref)
  const maxBytes = size < 0 ? 4096 << Math.min(4, -size - 1) : 8192
  const maxCount = size > 0 ? size : Infinity
  // A listpack entry takes at least 2 bytes: more entries than that cannot fit.
  if (n > maxCount || n * 2 > maxBytes) return 'quicklist'
  if (n === 0) return 'listpack'
  let bytes = 7 // listpack header and end byte
  l.at(ref, 0)
  do {
    const len = eE - eS
    bytes += lpEntryBytes(l.h.b[eA], eS, eE, len)
    if (bytes > maxBytes) return 'quicklist'
  } while (l.next())
  return 'listpack'
}

function zsetEncoding (store: Store, ref: number, entries: number, value: number): string {
  const z = typesOf(store).zsets
  let n = 0
  for (let x = z.fwd(z.head(ref), 0); x !== 0; x = z.fwd(x, 0)) {
    if (++n > entries) return 'skiplist'
    z.member(x)
    if (mE - mS > value) return 'skiplist'
  }
  return 'listpack'
}

/** A listpack entry's size as lpAppend writes it: integer or string encoding, plus its back-length. */
function lpEntryBytes (b: Buffer, s: number, e: number, len: number): number {
  const body = isInt64(b, s, e) ? intBytes(b, s, e) : len < 64 ? 1 + len : len < 4096 ? 2 + len : 5 + len
  return body + (body < 128 ? 1 : body < 16384 ? 2 : 3)
}

/** Bytes of a listpack integer entry's encoding and value. */
function intBytes (b: Buffer, s: number, e: number): number {
  if (e - s > 15) return 9
  const v = Number(b.toString('latin1', s, e))
  if (v >= 0 && v <= 127) return 1
  if (v >= -4096 && v < 4096) return 2
  if (v >= -32768 && v < 32768) return 3
  if (v >= -8388608 && v < 8388608) return 4
  return v >= -2147483648 && v < 2147483648 ? 5 : 9
}

const MAX_I64 = '9223372036854775807'

/** True if b[s, e) is an integer Redis's string2ll accepts (no sign of +, no leading zeros, fits 64 bits). */
export function isInt64 (b: Buffer, s: number, e: number): boolean {
  const len = e - s
  if (len === 0 || len > 20) return false
  let i = s
  if (b[i] === 0x2d) { i++; if (i === e) return false }
  if (b[i] === 0x30) return e - s === 1
  for (let j = i; j < e; j++) if (b[j] < 0x30 || b[j] > 0x39) return false
  const digits = e - i
  if (digits < 19) return true
  if (digits > 19) return false
  const d = b.toString('latin1', i, e)
  return b[s] === 0x2d ? d <= '9223372036854775808' : d <= MAX_I64
}
