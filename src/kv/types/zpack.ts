/**
 * Small sorted sets (up to 128 members of up to 64 bytes, as Redis's zset-max-listpack-*): one
 * block of [u32 used][u32 spare] then entries [f64 score][u8 member len][member], sorted by score
 * then member, like a listpack. Lookups are linear, as in a listpack; a member costs 9 bytes plus
 * itself instead of a skiplist node and a table slot.
 *
 * A position in a pack is a "pseudo node": (offset + 2) * 2^32 + pack ref, a JS number above 2^32
 * (heap refs are u32), so a position names its pack and ZSets can tell the encodings apart by value.
 * Offset -1 is the position before the first entry (the skiplist's head).
 */
import { blockSize, offOf, type TypeHeap } from './heap.ts'
import { copyBytes } from '../bytes.ts'

export const PACK_MAX_ENTRIES = 128
export const PACK_MAX_MEMBER = 64
const TWO32 = 2 ** 32
const PH = 8

export function isPseudo (n: number): boolean { return n >= TWO32 }
export function pseudo (pack: number, off: number): number { return (off + 2) * TWO32 + pack }
export function packOf (n: number): number { return n % TWO32 }
export function offIn (n: number): number { return Math.floor(n / TWO32) - 2 }

export class ZPack {
  constructor (readonly h: TypeHeap) {}

  /** A new empty pack with room for `bytes` of entries; returns its ref. */
  create (bytes: number): number {
    const size = blockSize(PH + bytes)
    const p = this.h.alloc(size)
    const u = this.h.u32[p >>> 23]
    u[offOf(p) >>> 2] = 0
    u[(offOf(p) >>> 2) + 1] = size - PH
    return p
  }

  used (p: number): number { return this.h.u32[p >>> 23][offOf(p) >>> 2] }
  cap (p: number): number { return this.h.u32[p >>> 23][(offOf(p) >>> 2) + 1] }
  release (p: number): void { this.h.release(p, PH + this.cap(p)) }

  /** Byte position of entry `off` in its arena. */
  private at (p: number, off: number): number { return offOf(p) + PH + off }

  score (n: number): number {
    const p = packOf(n)
    return this.h.b[p >>> 23].readDoubleLE(this.at(p, offIn(n)))
  }

  /** [arena, start, end) of the member of entry n, into the out array. */
  member (n: number, out: Float64Array): void {
    const p = packOf(n)
    const b = this.h.b[p >>> 23]
    const at = this.at(p, offIn(n))
    out[0] = p >>> 23
    out[1] = at + 9
    out[2] = at + 9 + b[at + 8]
  }

  /** The entry after n (n may be the head position), or 0. */
  next (n: number): number {
    const p = packOf(n)
    const off = offIn(n)
    const nx = off < 0 ? 0 : off + 9 + this.h.b[p >>> 23][this.at(p, off) + 8]
    return nx < this.used(p) ? pseudo(p, nx) : 0
  }

  /** The entry before n, or 0 (a scan from the start, as a listpack without back lengths would). */
  prev (n: number): number {
    const p = packOf(n)
    const off = offIn(n)
    let last = -1
    for (let o = 0; o < off; o += 9 + this.h.b[p >>> 23][this.at(p, o) + 8]) last = o
    return last < 0 ? 0 : pseudo(p, last)
  }

  last (p: number): number {
    let last = -1
    const used = this.used(p)
    for (let o = 0; o < used; o += 9 + this.h.b[p >>> 23][this.at(p, o) + 8]) last = o
    return last < 0 ? 0 : pseudo(p, last)
  }

  /** 0-based index of entry n. */
  rank (n: number): number {
    const p = packOf(n)
    const off = offIn(n)
    let r = 0
    for (let o = 0; o < off; o += 9 + this.h.b[p >>> 23][this.at(p, o) + 8]) r++
    return r
  }

  byRank (p: number, r: number): number {
    let o = 0
    for (let i = 0; i < r; i++) o += 9 + this.h.b[p >>> 23][this.at(p, o) + 8]
    return pseudo(p, o)
  }

  /**
   * Inserts (score, b[s, e)) in order into pack p; returns the pack's ref, which changes when the
   * pack has to move to a bigger block (`onMove` is told first).
   */
  insert (p: number, score: number, b: Buffer, s: number, e: number, before: (x: number) => boolean): number {
    const need = 9 + (e - s)
    const used = this.used(p)
    if (used + need > this.cap(p)) {
      // The next size class, not double: classes are a quarter apart, so slack stays under 25%, as a listpack's realloc.
      const bigger = this.create(used + need)
      this.h.b[p >>> 23].copy(this.h.b[bigger >>> 23], this.at(bigger, 0), this.at(p, 0), this.at(p, used))
      this.h.u32[bigger >>> 23][offOf(bigger) >>> 2] = used
      this.release(p)
      p = bigger
    }
    let o = 0
    while (o < used && before(pseudo(p, o))) o += 9 + this.h.b[p >>> 23][this.at(p, o) + 8]
    const buf = this.h.b[p >>> 23]
    const at = this.at(p, o)
    buf.copyWithin(at + need, at, this.at(p, used))
    buf.writeDoubleLE(score, at)
    buf[at + 8] = e - s
    copyBytes(buf, at + 9, b, s, e)
    this.h.u32[p >>> 23][offOf(p) >>> 2] = used + need
    return p
  }

  /** The entry whose member is b[s, e), or 0: a walk over the raw bytes, comparing from the end (numbered members differ there). */
  find (p: number, b: Buffer, s: number, e: number): number {
    const buf = this.h.b[p >>> 23]
    const base = this.at(p, 0)
    const end = base + this.used(p)
    const len = e - s
    for (let at = base; at < end; at += 9 + buf[at + 8]) {
      if (buf[at + 8] !== len) continue
      let i = len - 1
      while (i >= 0 && buf[at + 9 + i] === b[s + i]) i--
      if (i < 0) return pseudo(p, at - base)
    }
    return 0
  }

  /** Removes entry n. */
  remove (n: number): void {
    const p = packOf(n)
    const off = offIn(n)
    const buf = this.h.b[p >>> 23]
    const at = this.at(p, off)
    const size = 9 + buf[at + 8]
    const used = this.used(p)
    buf.copyWithin(at, at + size, this.at(p, used))
    this.h.u32[p >>> 23][offOf(p) >>> 2] = used - size
  }
}
