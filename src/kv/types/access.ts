/**
 * How collection commands reach their key: a typed record whose 4-byte value is the ref of the
 * collection's header block in the store's collections heap (see heap.ts). The record's type tag is
 * the low byte of the header's spare u32 (RDB type numbers).
 */
import { Glob } from '../glob.ts'
import type { Store } from '../store.ts'
import type { Segment } from '../segments.ts'
import { NOT_INT, OOM, SYNTAX, WRONGTYPE, type Ctx } from '../commands/context.ts'
import { TypeHeap } from './heap.ts'
import { Dict } from './dict.ts'
import { typesOf, HEAP_REF, isHeapRecord, type Types } from './registry.ts'

export { HEAP_REF, isHeapRecord }

export { WRONGTYPE }
export const T_STRING = 0
export const T_LIST = 1
export const T_SET = 2
export const T_ZSET = 3
export const T_HASH = 4
const BAD_RECORD = 'ERR the key holds a collection in an encoding this build does not read'


/** The slot of the key found by the last `open` (-1 if absent). */
export let slot = -1

/** The type tag of the record the store found last. */
export function tagOf (store: Store): number {
  return store.typeOf()
}

/** The collection header ref of the record the store found last. */
export function refOf (store: Store): number {
  return store.seg.bytes.readUInt32LE(store.seg.valStart(store.off))
}

/**
 * Finds argument i's key as a `type`: its header ref, 0 if there is no such key, or -1 after
 * replying WRONGTYPE if it holds another type.
 */
export function open (c: Ctx, i: number, type: number): number {
  const store = c.store
  slot = store.find(c.buf, c.s(i), c.e(i))
  if (slot < 0) return 0
  if (tagOf(store) !== type) { c.out.error(WRONGTYPE); return -1 }
  if (!isHeapRecord(store.seg, store.off)) { c.out.error(BAD_RECORD); return -1 }
  return refOf(store)
}

const refBuf = Buffer.alloc(4)

/** Creates argument i's key (absent: `slot` from `open`) holding collection `ref`; false after replying OOM. */
export function create (c: Ctx, i: number, type: number, ref: number): boolean {
  return createKey(c.store, c.buf, c.s(i), c.e(i), type, ref, slot, c)
}

/** Creates key `b[s, e)` whose probe slot is `at` (from a find just before). */
export function createKey (store: Store, b: Buffer, s: number, e: number, type: number, ref: number, at: number, c?: Ctx): boolean {
  refBuf.writeUInt32LE(ref, 0)
  if (store.write(at, b, s, e, refBuf, 0, 4, 0, type | HEAP_REF)) return true
  c?.out.error(OOM)
  return false
}

/** Deletes argument i's key if `count` is 0 (the collection became empty). */
export function dropIfEmpty (c: Ctx, i: number, count: number): void {
  if (count !== 0) return
  const at = c.store.find(c.buf, c.s(i), c.e(i))
  if (at >= 0) c.store.removeAt(at)
}

export function types (c: Ctx): Types { return typesOf(c.store) }
export function heap (c: Ctx): TypeHeap { return typesOf(c.store).heap }
export function dict (c: Ctx): Dict { return typesOf(c.store).dict }

/** The store's seeded hash of `b[s, e)` (it travels with the store, so tables stay valid). */
export function hashOf (c: Ctx, b: Buffer, s: number, e: number): number {
  return c.store.keyHash.of(b, s, e)
}

export interface ScanArgs { cursor: number, count: number, glob: Glob | null }

/** Parses `cursor [MATCH p] [COUNT n]` from argument `at`; null after replying an error. */
export function scanArgs (c: Ctx, at: number): ScanArgs | null {
  const cur = c.int(at)
  if (cur === null || cur < 0n) { c.out.error('ERR invalid cursor'); return null }
  const o: ScanArgs = { cursor: Number(cur & 0xffffffffn), count: 10, glob: null }
  for (let i = at + 1; i < c.argc; i++) {
    if (c.is(i, 'match') && i + 1 < c.argc) {
      o.glob = c.is(i + 1, '*') ? null : Glob.compile(c.buf, c.s(i + 1), c.e(i + 1))
      i++
    } else if (c.is(i, 'count') && i + 1 < c.argc) {
      const n = c.num(i + 1)
      if (n === null) { c.out.error(NOT_INT); return null }
      if (n < 1) { c.out.error(SYNTAX); return null }
      o.count = n
      i++
    } else { c.out.error(SYNTAX); return null }
  }
  return o
}

/**
 * A double as Redis 7.2 replies with a score (fpconv_dtoa): the shortest digits that read back as
 * the same double, written plain when short enough and as d.ddde+XX otherwise. Exact for every
 * double, unlike `formatFloat`, which rounds tiny values such as 1e-322 to 0.
 */
export function formatScore (n: number): string {
  // An integer of at most 7 digits comes out plain from the rule below, as String() writes it, 10x
  // faster (1.1 against 0.1 µs here): most scores (ranks, counts, redis-benchmark's) are such integers.
  if (Number.isInteger(n) && n > -1e7 && n < 1e7 && !Object.is(n, -0)) return String(n)
  return exactScore(n)
}

/** formatScore's general rule, for any double. */
export function exactScore (n: number): string {
  if (Number.isNaN(n)) return 'nan'
  if (n === Infinity) return 'inf'
  if (n === -Infinity) return '-inf'
  if (n === 0) return Object.is(n, -0) ? '-0' : '0'
  const [mant, e] = Math.abs(n).toExponential().split('e')
  const digits = mant.replace('.', '')
  const nd = digits.length
  const K = Number(e) - nd + 1
  const exp = Math.abs(K + nd - 1)
  const sign = n < 0 ? '-' : ''
  if (K >= 0 && exp < nd + 7) return sign + digits + '0'.repeat(K)
  if (K < 0 && (K > -7 || exp < 4)) {
    const point = nd + K
    return sign + (point <= 0 ? '0.' + '0'.repeat(-point) + digits : digits.slice(0, point) + '.' + digits.slice(point))
  }
  return sign + digits[0] + (nd > 1 ? '.' + digits.slice(1) : '') + 'e' + (Number(e) < 0 ? '-' : '+') + String(exp)
}

/** Redis's human float format (%.17Lg without exponent, trailing zeros trimmed). */
export function formatFloat (n: number): string {
  if (n === Infinity) return 'inf'
  if (n === -Infinity) return '-inf'
  if (Number.isInteger(n) && Math.abs(n) >= 1e21) return BigInt(n).toString()
  const s = String(n)
  if (!s.includes('e')) return s
  return n.toFixed(20).replace(/\.?0+$/, '')
}

const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
const INF = /^[+-]?inf(inity)?$/i

/** Parses argument bytes as Redis's strtold would for a score or increment; NaN if not a float. */
export function parseFloatArg (b: Buffer, s: number, e: number): number {
  if (e - s === 0 || e - s > 400) return NaN
  // Plain integers of up to 15 digits (exact as doubles) are read without a string and a regexp.
  if (e - s <= 15) {
    const neg = b[s] === 45
    let n = 0
    let i = neg ? s + 1 : s
    for (; i < e; i++) {
      const c = b[i] - 48
      if (c < 0 || c > 9) break
      n = n * 10 + c
    }
    if (i === e && i > (neg ? s + 1 : s)) return neg ? -n : n
  }
  const str = b.toString('latin1', s, e)
  if (FLOAT.test(str)) return Number(str)
  if (INF.test(str)) return str[0] === '-' ? -Infinity : Infinity
  return NaN
}
