/**
 * Active expiry: a cursor walks the index a slice at a time and deletes keys whose time has passed,
 * so that keys nobody reads again still give their memory back. Reads also expire lazily (Store.find).
 */
import type { Store } from './store.ts'

export class ExpirySweeper {
  private cursor = 0
  expired = 0

  constructor (private readonly store: Store) {}

  /** Checks up to `slots` index slots. */
  sweep (slots: number): void {
    const store = this.store
    if (store.expires === 0) return
    const t = store.index.t
    const cap = store.index.capacity
    if (this.cursor >= cap) this.cursor = 0
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
      }
      i++
    }
    this.cursor = end
  }
}
