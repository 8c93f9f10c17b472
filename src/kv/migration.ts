/**
 * Incremental index growth. The old index stays the one every lookup uses; a cursor copies its
 * slots into the new, larger index a slice at a time (a few per insert, more between reads), and
 * every change behind the cursor is mirrored. So the new index always holds exactly the entries of
 * the old one's slots below the cursor; when the cursor reaches the end it holds them all, and the
 * store switches over. No single command pays for moving millions of entries.
 */
import type { KeyIndex } from './keyindex.ts'
import type { Allocator } from './segments.ts'

export class IndexMigration {
  cursor = 0

  constructor (readonly from: KeyIndex, readonly to: KeyIndex) {}

  get done (): boolean {
    return this.cursor >= this.from.capacity
  }

  /** Copies the next `slots` slots; returns true when every slot is copied. */
  step (slots: number): boolean {
    const t = this.from.t
    const end = Math.min(this.from.capacity, this.cursor + slots)
    for (let i = this.cursor; i < end; i++) {
      const w = i << 2
      if (t[w] !== 0) this.add(t[w], t[w + 1], t[w + 2])
    }
    this.cursor = end
    return this.done
  }

  /** A new entry went into old slot `slot`. */
  inserted (slot: number, hash: number, seg: number, off: number): void {
    if (slot < this.cursor) this.add(hash, seg, off)
  }

  /** The entry in old slot `slot` now points at another record. */
  relocated (slot: number, hash: number, seg: number, off: number, toSeg: number, toOff: number): void {
    if (slot >= this.cursor) return
    const j = this.locate(hash, seg, off)
    if (j < 0) throw new Error('kv index migration: an entry behind the cursor is missing')
    this.to.t[(j << 2) + 1] = toSeg
    this.to.t[(j << 2) + 2] = toOff
  }

  /** The entry in old slot `slot` is about to be deleted. */
  removing (slot: number): void {
    if (slot >= this.cursor) return
    const w = slot << 2
    const t = this.from.t
    this.drop(t[w], t[w + 1], t[w + 2])
  }

  /** A backward shift in the old index moved the entry now in slot `to` from slot `from`. */
  shifted (from: number, to: number): void {
    const behindBefore = from < this.cursor
    const behindNow = to < this.cursor
    if (behindBefore === behindNow) return
    const w = to << 2
    const t = this.from.t
    if (behindNow) this.add(t[w], t[w + 1], t[w + 2])
    else this.drop(t[w], t[w + 1], t[w + 2])
  }

  private add (hash: number, seg: number, off: number): void {
    const to = this.to
    let j = hash & to.mask
    while (to.t[j << 2] !== 0) j = (j + 1) & to.mask
    to.put(j, hash, seg, off)
  }

  private drop (hash: number, seg: number, off: number): void {
    const j = this.locate(hash, seg, off)
    if (j < 0) throw new Error('kv index migration: an entry behind the cursor is missing')
    this.to.removeAt(j)
  }

  private locate (hash: number, seg: number, off: number): number {
    const { t, mask } = this.to
    for (let j = hash & mask; t[j << 2] !== 0; j = (j + 1) & mask) {
      const w = j << 2
      if (t[w] === hash && t[w + 1] === seg && t[w + 2] === off) return j
    }
    return -1
  }
}

/** The next index's region, allocated and faulted in ahead of need: first touch of fresh memory is the slow part. */
export class SpareIndex {
  private region: ArrayBuffer | null = null
  private touched = 0

  constructor (private readonly allocator: Allocator) {}

  /** Faults in up to `maxPages` more pages of a spare region of `bytes`; true while more remain. */
  prepare (bytes: number, maxPages: number): boolean {
    if (this.region === null || this.region.byteLength !== bytes) {
      this.release()
      this.region = this.allocator.alloc(bytes, 'index')
      this.touched = 0
    }
    const words = new Uint32Array(this.region)
    const end = Math.min(bytes, this.touched + maxPages * 4096)
    for (let off = this.touched; off < end; off += 4096) words[off >>> 2] = 0
    this.touched = end
    return end < bytes
  }

  /** A region of `bytes`: the spare one if it has that size, else a fresh one. */
  take (bytes: number): ArrayBuffer {
    const r = this.region?.byteLength === bytes ? this.region : this.allocator.alloc(bytes, 'index')
    if (r === this.region) this.region = null
    return r
  }

  release (): void {
    if (this.region !== null) this.allocator.release(this.region)
    this.region = null
  }
}
