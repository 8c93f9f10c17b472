/**
 * Active expiry. Keys with a TTL are kept in a min-heap by expiry time (expiry-queue.ts), so the keys whose time has passed are found first and
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
      store.expireSlot(slot)
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
          store.expireSlot(i)
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
