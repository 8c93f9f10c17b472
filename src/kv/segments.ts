/**
 * Values live in log-structured segments: fixed-size regions that records are appended to.
 * A record is 8-byte aligned:
 *   u32 size (whole record, padded) | u32 key length | u32 value length | u32 tag | f64 expireAt (ms, 0 = none) | key | value
 * The tag's low byte is the value's type, numbered as RDB numbers them (see RecordType); the other
 * 24 bits are the type's own (its encoding). A release before types wrote 0 there: every record it
 * made reads as a string, which it was.
 * A record may be rewritten in place when a new value fits its size; otherwise the new version is
 * appended and the old one becomes garbage, counted per segment so compaction knows where to look.
 */

import { copyBytes } from './bytes.ts'

export const HEADER = 24

/** A record's type: RDB's type numbers, so that RDB in and out need no table. */
export const RecordType = { string: 0, list: 1, set: 2, zset: 3, hash: 4 } as const
export type RecordTypeName = keyof typeof RecordType
/** A string's tag when it was made by APPEND or SETRANGE: OBJECT ENCODING says raw, as Redis's sds does, whatever it holds. */
export const STRING_RAW = 1 << 8
/** TYPE's answer for each tag value, by RDB number. */
export const TYPE_NAMES: readonly string[] = ['string', 'list', 'set', 'zset', 'hash']

/** How regions are obtained and given back; the default uses giftable memory when present. */
export interface Allocator {
  alloc (bytes: number, name: string): ArrayBuffer
  release (region: ArrayBuffer): void
}

export const heapAllocator: Allocator = {
  alloc: (bytes) => new ArrayBuffer(bytes),
  release: () => {}
}

export function recordSize (klen: number, vlen: number): number {
  return (HEADER + klen + vlen + 7) & ~7
}

/** What a successor needs to wrap a segment again, besides its region. */
export interface SegmentMeta { id: number, used: number, live: number }

export class Segment {
  readonly id: number
  readonly region: ArrayBuffer
  readonly bytes: Buffer
  readonly u32: Uint32Array
  readonly f64: Float64Array
  /** Append offset: bytes [0, used) hold records. */
  used: number
  /** Bytes of records still reachable from the index. */
  live: number

  constructor (id: number, region: ArrayBuffer, used = 0, live = 0) {
    this.id = id
    this.region = region
    const size = region.byteLength & ~7
    this.bytes = Buffer.from(region, 0, size)
    this.u32 = new Uint32Array(region, 0, size >>> 2)
    this.f64 = new Float64Array(region, 0, size >>> 3)
    this.used = used
    this.live = live
  }

  get size (): number {
    return this.bytes.length
  }

  fits (n: number): boolean {
    return this.used + n <= this.bytes.length
  }

  /** Appends a record whose value is `vsrc[vs, ve)`; returns its offset. The caller checked `fits`. */
  append (ksrc: Buffer, ks: number, ke: number, vsrc: Buffer, vs: number, ve: number, expireAt: number, tag = 0): number {
    const klen = ke - ks
    const vlen = ve - vs
    const size = recordSize(klen, vlen)
    const off = this.used
    const w = off >>> 2
    this.u32[w] = size
    this.u32[w + 1] = klen
    this.u32[w + 2] = vlen
    this.u32[w + 3] = tag
    this.f64[(off >>> 3) + 2] = expireAt
    copyBytes(this.bytes, off + HEADER, ksrc, ks, ke)
    copyBytes(this.bytes, off + HEADER + klen, vsrc, vs, ve)
    this.used += size
    this.live += size
    return off
  }

  recSize (off: number): number { return this.u32[off >>> 2] }
  keyLen (off: number): number { return this.u32[(off >>> 2) + 1] }
  valLen (off: number): number { return this.u32[(off >>> 2) + 2] }
  /** The whole tag word: type in the low byte, the type's encoding above it. */
  tag (off: number): number { return this.u32[(off >>> 2) + 3] }
  setTag (off: number, tag: number): void { this.u32[(off >>> 2) + 3] = tag }
  /** The record's type (RecordType). */
  type (off: number): number { return this.u32[(off >>> 2) + 3] & 0xff }
  expireAt (off: number): number { return this.f64[(off >>> 3) + 2] }
  setExpireAt (off: number, at: number): void { this.f64[(off >>> 3) + 2] = at }
  keyStart (off: number): number { return off + HEADER }
  valStart (off: number): number { return off + HEADER + this.u32[(off >>> 2) + 1] }

  /** True if the record at `off` has key `src[s, e)`. */
  keyEquals (off: number, src: Buffer, s: number, e: number): boolean {
    const klen = e - s
    if (this.u32[(off >>> 2) + 1] !== klen) return false
    const b = this.bytes
    let p = off + HEADER
    if (klen > 64) return b.compare(src, s, e, p, p + klen) === 0
    for (let i = s; i < e; i++) if (b[p++] !== src[i]) return false
    return true
  }

  /** Overwrites the value in place; the caller checked that it fits the record. */
  rewriteValue (off: number, vsrc: Buffer, vs: number, ve: number): void {
    this.u32[(off >>> 2) + 2] = ve - vs
    copyBytes(this.bytes, this.valStart(off), vsrc, vs, ve)
  }

  meta (): SegmentMeta {
    return { id: this.id, used: this.used, live: this.live }
  }
}
