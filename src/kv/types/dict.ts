/**
 * An open-addressing hash table in the heap, for hashes, sets and the member index of sorted sets.
 * The header block is [u32 table][u32 capacity][u32 count][...the owner's words]; the table is
 * capacity slots of [u32 hash][u32 entry ref] (ref 0 = empty), linear probing, and deletion shifts
 * later entries back (no tombstones), as the key index does.
 *
 * Entries are blocks whose layout depends on the kind:
 *   HASH: [u32 field len][u32 value len][field][value]
 *   SET:  [u32 len][member]
 *   ZSET: a skiplist node (see zset.ts), the member after its levels.
 *
 * SCAN's cursor walks home slots in reverse-binary order, as Redis's dictScan does, and visits a home
 * slot by walking its probe run for the entries whose home it is. Entries only ever move toward their
 * home (backward shift), and doubling splits home h into h and h + cap, so an entry present for the
 * whole scan is returned at least once across deletes and growth.
 */
import { blockSize, offOf, type TypeHeap } from './heap.ts'
import { nextCursor } from '../scan.ts'

export const HASH = 0
export const SET = 1
export const ZSET = 2

const MIN_CAP = 8

/** Where the key of an entry is: set by `keyOf`. */
export let kArena = 0
export let kStart = 0
export let kEnd = 0

export function keyOf (h: TypeHeap, kind: number, ref: number): void {
  const a = ref >>> 23
  const o = offOf(ref)
  const u = h.u32[a]
  kArena = a
  if (kind === HASH) { kStart = o + 8; kEnd = kStart + u[o >>> 2] } else if (kind === SET) { kStart = o + 4; kEnd = kStart + u[o >>> 2] } else {
    const level = u[(o >>> 2) + 3]
    kStart = o + 20 + 8 * level
    kEnd = kStart + u[(o >>> 2) + 4]
  }
}

/** Bytes of the entry block at `ref`, as allocated. */
export function entryBytes (h: TypeHeap, kind: number, ref: number): number {
  const u = h.u32[ref >>> 23]
  const w = offOf(ref) >>> 2
  if (kind === HASH) return 8 + u[w] + u[w + 1]
  if (kind === SET) return 4 + u[w]
  return 20 + 8 * u[w + 3] + u[w + 4]
}

export class Dict {
  /** The slot a successful `find` found. */
  slot = 0
  /** The entry ref a successful `find` found. */
  ref = 0

  constructor (readonly h: TypeHeap) {}

  /** A new empty table with a header of `headerWords` u32 (at least 3). */
  create (headerWords: number): number {
    const hd = this.h.alloc(headerWords * 4)
    const w = this.words(hd)
    const u = this.h.u32[hd >>> 23]
    u[w] = this.newTable(MIN_CAP)
    u[w + 1] = MIN_CAP
    u[w + 2] = 0
    for (let i = 3; i < headerWords; i++) u[w + i] = 0
    return hd
  }

  words (hd: number): number { return offOf(hd) >>> 2 }
  count (hd: number): number { return this.h.u32[hd >>> 23][this.words(hd) + 2] }
  cap (hd: number): number { return this.h.u32[hd >>> 23][this.words(hd) + 1] }
  table (hd: number): number { return this.h.u32[hd >>> 23][this.words(hd)] }

  /** Entry ref in slot i of the table (0 if empty). */
  at (hd: number, i: number): number {
    const t = this.table(hd)
    return this.h.u32[t >>> 23][(offOf(t) >>> 2) + 2 * i + 1]
  }

  /** Finds key `b[s, e)` with hash `hash`; true sets slot/ref. */
  find (hd: number, kind: number, hash: number, b: Buffer, s: number, e: number): boolean {
    const h = this.h
    const t = this.table(hd)
    const mask = this.cap(hd) - 1
    const tu = h.u32[t >>> 23]
    const tw = offOf(t) >>> 2
    const len = e - s
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const ref = tu[tw + 2 * i + 1]
      if (ref === 0) return false
      if (tu[tw + 2 * i] !== hash) continue
      keyOf(h, kind, ref)
      if (kEnd - kStart !== len) continue
      if (equal(h.b[kArena], kStart, b, s, len)) {
        this.slot = i
        this.ref = ref
        return true
      }
    }
  }

  /** Adds entry `ref` (its key is known to be absent), growing the table first if needed. */
  insert (hd: number, hash: number, ref: number): void {
    const u = this.h.u32[hd >>> 23]
    const w = this.words(hd)
    if ((u[w + 2] + 1) * 5 > u[w + 1] * 4) this.resize(hd, u[w + 1] * 2)
    this.place(u[w], u[w + 1], hash, ref)
    u[w + 2]++
  }

  /** Empties `slot` (backward shift); shrinks a sparse table. Does not free the entry. */
  removeSlot (hd: number, slot: number): void {
    const h = this.h
    const u = h.u32[hd >>> 23]
    const w = this.words(hd)
    const t = u[w]
    const mask = u[w + 1] - 1
    const tu = h.u32[t >>> 23]
    const tw = offOf(t) >>> 2
    let hole = slot
    for (let j = (slot + 1) & mask; tu[tw + 2 * j + 1] !== 0; j = (j + 1) & mask) {
      const home = tu[tw + 2 * j] & mask
      const between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
      if (between) continue
      tu[tw + 2 * hole] = tu[tw + 2 * j]
      tu[tw + 2 * hole + 1] = tu[tw + 2 * j + 1]
      hole = j
    }
    tu[tw + 2 * hole] = 0
    tu[tw + 2 * hole + 1] = 0
    u[w + 2]--
    if (u[w + 1] > MIN_CAP && u[w + 2] * 8 < u[w + 1]) this.resize(hd, Math.max(MIN_CAP, u[w + 1] / 4))
  }

  /** Points the entry in `slot` at a new block (a value that changed size, a node rewritten). */
  setRef (hd: number, slot: number, ref: number): void {
    const t = this.table(hd)
    this.h.u32[t >>> 23][(offOf(t) >>> 2) + 2 * slot + 1] = ref
  }

  /** Frees every entry (of `kind`), the table and the header (of `headerWords`). */
  destroy (hd: number, kind: number, headerWords: number): void {
    const cap = this.cap(hd)
    for (let i = 0; i < cap; i++) {
      const ref = this.at(hd, i)
      if (ref !== 0) this.h.release(ref, entryBytes(this.h, kind, ref))
    }
    this.h.release(this.table(hd), cap * 8)
    this.h.release(hd, headerWords * 4)
  }

  /** A random occupied slot (the table is never emptier than 1/8 but when tiny). */
  randomSlot (hd: number): number {
    const cap = this.cap(hd)
    for (;;) {
      const i = Math.floor(Math.random() * cap)
      if (this.at(hd, i) !== 0) return i
    }
  }

  /** Calls `fn(ref)` for entries whose home slot is `cursor`'s, then returns the next cursor (0 = done). */
  scanStep (hd: number, cursor: number, fn: (ref: number) => void): number {
    const cap = this.cap(hd)
    const mask = cap - 1
    const home = cursor & mask
    const t = this.table(hd)
    const tu = this.h.u32[t >>> 23]
    const tw = offOf(t) >>> 2
    for (let i = home; tu[tw + 2 * i + 1] !== 0; i = (i + 1) & mask) {
      if ((tu[tw + 2 * i] & mask) === home) fn(tu[tw + 2 * i + 1])
    }
    return nextCursor(cursor, mask)
  }

  private newTable (cap: number): number {
    const t = this.h.alloc(cap * 8)
    this.h.b[t >>> 23].fill(0, offOf(t), offOf(t) + cap * 8)
    return t
  }

  private place (t: number, cap: number, hash: number, ref: number): void {
    const tu = this.h.u32[t >>> 23]
    const tw = offOf(t) >>> 2
    const mask = cap - 1
    let i = hash & mask
    while (tu[tw + 2 * i + 1] !== 0) i = (i + 1) & mask
    tu[tw + 2 * i] = hash
    tu[tw + 2 * i + 1] = ref
  }

  private resize (hd: number, cap: number): void {
    const h = this.h
    const u = h.u32[hd >>> 23]
    const w = this.words(hd)
    const old = u[w]
    const oldCap = u[w + 1]
    const next = this.newTable(cap)
    const tu = h.u32[old >>> 23]
    const tw = offOf(old) >>> 2
    for (let i = 0; i < oldCap; i++) {
      const ref = tu[tw + 2 * i + 1]
      if (ref !== 0) this.place(next, cap, tu[tw + 2 * i], ref)
    }
    h.release(old, oldCap * 8)
    u[w] = next
    u[w + 1] = cap
  }
}

export function equal (a: Buffer, as: number, b: Buffer, bs: number, len: number): boolean {
  if (len > 32) return a.compare(b, bs, bs + len, as, as + len) === 0
  for (let i = 0; i < len; i++) if (a[as + i] !== b[bs + i]) return false
  return true
}

/** The bytes a table of `cap` slots takes (for memory accounting). */
export function tableBytes (cap: number): number { return blockSize(cap * 8) }
