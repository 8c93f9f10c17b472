/**
 * Compaction: when a sealed segment is mostly garbage, copy its live records to the active segment,
 * repoint the index, and free the region. It runs in small time-boxed steps between client reads,
 * so no single step stalls clients for more than about a millisecond.
 */
import type { Segment } from './segments.ts'
import type { Store } from './store.ts'

/** A sealed segment with live/used below this ratio is worth compacting. */
export const GARBAGE_RATIO = 0.5

export class Compactor {
  private victim: Segment | null = null
  private readonly stuck = new Set<Segment>()
  private cursor = 0
  /** Bytes copied and regions freed so far, for INFO. */
  movedBytes = 0
  freedSegments = 0

  constructor (private readonly store: Store) {}

  /** Does up to `budgetMs` of work; returns true if there is more to do. */
  step (budgetMs: number): boolean {
    const deadline = performance.now() + budgetMs
    for (;;) {
      if (this.victim === null && !this.pick()) return false
      const seg = this.victim as Segment
      if (this.store.segments[seg.id] !== seg) { this.victim = null; continue } // FLUSHALL freed it
      let n = 0
      while (this.cursor < seg.used && seg.live > 0) {
        this.cursor += this.moveIfLive(seg, this.cursor)
        if ((++n & 255) === 0 && performance.now() > deadline) return true
      }
      this.victim = null
      if (seg.live !== 0) {
        // Live bytes the index does not point at: an accounting bug. Keep the segment, never retry it.
        this.stuck.add(seg)
        process.emitWarning(`pagegift-kv: segment ${seg.id} keeps ${seg.live} live bytes after compaction; leaving it`)
        continue
      }
      this.store.dropSegment(seg)
      this.freedSegments++
      if (performance.now() > deadline) return true
    }
  }

  private pick (): boolean {
    const store = this.store
    let best: Segment | null = null
    for (const s of store.segments) {
      if (s === undefined || s === store.active || s.used === 0 || this.stuck.has(s)) continue
      const ratio = s.live / s.used
      if (ratio < GARBAGE_RATIO && (best === null || ratio < best.live / best.used)) best = s
    }
    this.victim = best
    this.cursor = 0
    return best !== null
  }

  /** Moves the record at `off` if the index still points at it; returns the record's size. */
  private moveIfLive (seg: Segment, off: number): number {
    const size = seg.recSize(off)
    const ks = seg.keyStart(off)
    const h = this.store.keyHash.of(seg.bytes, ks, ks + seg.keyLen(off))
    const store = this.store
    const t = store.index.t
    const mask = store.index.mask
    for (let i = h & mask; t[i << 2] !== 0; i = (i + 1) & mask) {
      const w = i << 2
      if (t[w] !== h || t[w + 1] !== seg.id || t[w + 2] !== off) continue
      const at = seg.expireAt(off)
      if (at !== 0 && at <= store.now) {
        store.expireSlot(i)
        return size
      }
      const dst = store.room(size)
      const noff = dst.used
      seg.bytes.copy(dst.bytes, noff, off, off + size)
      dst.used += size
      dst.live += size
      seg.live -= size
      store.relocate(i, dst.id, noff)
      this.movedBytes += size
      return size
    }
    return size
  }
}
