/**
 * The keys with a TTL in expiry order: a min-heap by expiry time in three typed arrays (time,
 * segment, offset; no JS object per key). An entry names a record by its place, so entries go
 * stale when records move; expiry.ts checks each popped entry against the index. Its own file so
 * that the store can own a queue without importing the sweeper that reads the store.
 */
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
