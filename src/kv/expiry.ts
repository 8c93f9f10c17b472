/**
 * Active expiry. Keys with a TTL are kept in a min-heap by expiry time (three typed arrays: time,
 * segment, offset; no JS object per key), so the keys whose time has passed are found first and
 * a few at a time, however many keys there are. An entry names a record by its place; the store
 * pushes a new entry whenever a record with a TTL moves or gets a new TTL, so old entries go stale,
 * and a popped entry counts only if the index still points at that place with that time.
 *
 * The heap is not handed over in a live upgrade (it is cheap to rebuild and not worth a region):
 * a cursor walks the index a slice at a time, and re-queues every TTL it meets, which after an
 * adopt rebuilds the heap, and at any time deletes keys it finds expired. Reads also expire lazily
 * (Store.find).
 */
import type { Store } from './store.ts'

export class ExpiryQueue {
  private at = new Float64Array(1024)
  private seg = new Uint32Array(1024)
  private off = new Uint32Array(1024)
  size = 0

  push (at: number, seg: number, off: number): void {
    if (this.size === this.at.length) this.grow()
    let i = this.size++
    // Sift up.
    while (i > 0) {
      const p = (i - 1) >> 1
      if (this.at[p] <= at) break
      this.move(p, i)
      i = p
    }
    this.at[i] = at
    this.seg[i] = seg
    this.off[i] = off
  }

  /** The earliest time queued, or Infinity. */
  peek (): number {
    return this.size === 0 ? Infinity : this.at[0]
  }

  /** Removes the earliest entry; its fields are left in `top`. */
  pop (top: { at: number, seg: number, off: number }): void {
    top.at = this.at[0]
    top.seg = this.seg[0]
    top.off = this.off[0]
    const n = --this.size
    if (n === 0) return
    const at = this.at[n]
    const seg = this.seg[n]
    const off = this.off[n]
    let i = 0
    for (;;) {
      let c = 2 * i + 1
      if (c >= n) break
      if (c + 1 < n && this.at[c + 1] < this.at[c]) c++
      if (this.at[c] >= at) break
      this.move(c, i)
      i = c
    }
    this.at[i] = at
    this.seg[i] = seg
    this.off[i] = off
  }

  clear (): void {
    this.size = 0
    if (this.at.length > 1024) {
      this.at = new Float64Array(1024)
      this.seg = new Uint32Array(1024)
      this.off = new Uint32Array(1024)
    }
  }

  private move (from: number, to: number): void {
    this.at[to] = this.at[from]
    this.seg[to] = this.seg[from]
    this.off[to] = this.off[from]
  }

  private grow (): void {
    const n = this.at.length * 2
    const at = new Float64Array(n); at.set(this.at); this.at = at
    const seg = new Uint32Array(n); seg.set(this.seg); this.seg = seg
    const off = new Uint32Array(n); off.set(this.off); this.off = off
  }
}

export class ExpirySweeper {
  private cursor = 0
  /** Set after the queue is rebuilt from the index: an adopted store starts with an empty queue. */
  private wholeLap: boolean
  private readonly top = { at: 0, seg: 0, off: 0 }
  expired = 0

  constructor (private readonly store: Store, adopted = false) {
    this.wholeLap = !adopted
  }

  /** Deletes up to `max` keys whose time has passed, earliest first; returns how many. */
  expireDue (max: number): number {
    const store = this.store
    const q = store.expiryQueue
    let n = 0
    while (n < max && q.peek() <= store.now) {
      q.pop(this.top)
      const slot = store.slotOf(this.top.seg, this.top.off)
      if (slot < 0 || !store.at(slot) || store.seg.expireAt(store.off) !== this.top.at) continue
      store.removeAt(slot)
      this.expired++
      n++
    }
    // Stale entries (rewritten, moved or deleted keys) pile up under churn: rebuild from the index.
    if (q.size > 2 * store.expires + 65536) this.requeue()
    return n
  }

  /** Walks up to `slots` index slots: deletes expired keys, and re-queues TTLs until a lap is done. */
  sweep (slots: number): void {
    const store = this.store
    if (store.expires === 0) { this.wholeLap = true; return }
    const t = store.index.t
    const cap = store.index.capacity
    if (this.cursor >= cap) { this.cursor = 0; this.wholeLap = true }
    const end = Math.min(cap, this.cursor + slots)
    let i = this.cursor
    while (i < end) {
      if (t[i << 2] !== 0 && store.at(i)) {
        const at = store.seg.expireAt(store.off)
        if (at !== 0 && at <= store.now) {
          store.removeAt(i)
          this.expired++
          continue
        }
        if (at !== 0 && !this.wholeLap) store.expiryQueue.push(at, store.seg.id, store.off)
      }
      i++
    }
    this.cursor = end
  }

  /** Empties the queue and lets the sweep fill it again over one lap of the index. */
  private requeue (): void {
    this.store.expiryQueue.clear()
    this.cursor = 0
    this.wholeLap = false
  }
}
