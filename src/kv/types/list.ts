/**
 * Lists: a quicklist in the heap. The header block is [u32 head][u32 tail][u32 count][u32 nodes];
 * a node block is [u32 prev][u32 next][u32 count][u32 used][u32 cap] then `used` bytes of packed
 * entries, each [len][bytes] where len is one byte below 128, else 0x80 then a u32. A node holds up to
 * NODE_MAX bytes of entries (Redis's list-max-listpack-size -2, 8 KiB) unless one entry is bigger.
 *
 * A position is (node, offset of the entry from the node's entries); `at`/`next` leave it in the
 * exported module variables so walking a list allocates nothing.
 */
import { blockSize, offOf, type TypeHeap } from './heap.ts'
import { copyBytes } from '../bytes.ts'

const NH = 20
export const NODE_MAX = 8192 - NH

/** The current position and its entry's bytes: heap.b[eA][eS, eE). */
export let pNode = 0
export let pOff = 0
export let eA = 0
export let eS = 0
export let eE = 0

export function entrySize (len: number): number { return len < 128 ? 1 + len : 5 + len }

export class Lists {
  constructor (readonly h: TypeHeap) {}

  create (): number {
    const hd = this.h.alloc(16)
    this.h.u32[hd >>> 23].fill(0, offOf(hd) >>> 2, (offOf(hd) >>> 2) + 4)
    return hd
  }

  private w (ref: number): number { return offOf(ref) >>> 2 }
  private u (ref: number): Uint32Array { return this.h.u32[ref >>> 23] }
  count (hd: number): number { return this.u(hd)[this.w(hd) + 2] }
  head (hd: number): number { return this.u(hd)[this.w(hd)] }
  tail (hd: number): number { return this.u(hd)[this.w(hd) + 1] }

  destroy (hd: number): void {
    for (let n = this.head(hd); n !== 0;) {
      const next = this.u(n)[this.w(n) + 1]
      this.h.release(n, NH + this.u(n)[this.w(n) + 4])
      n = next
    }
    this.h.release(hd, 16)
  }

  /** Reads the entry at (node, off) into eA/eS/eE (and pNode/pOff). */
  load (node: number, off: number): void {
    const b = this.h.b[node >>> 23]
    const p = offOf(node) + NH + off
    pNode = node
    pOff = off
    eA = node >>> 23
    const l = b[p]
    if (l < 128) { eS = p + 1; eE = eS + l } else { eS = p + 5; eE = eS + b.readUInt32LE(p + 1) }
  }

  /** Moves to the entry after the current one; false at the end of the list. */
  next (): boolean {
    const u = this.u(pNode)
    const w = this.w(pNode)
    const off = eE - offOf(pNode) - NH
    if (off < u[w + 3]) { this.load(pNode, off); return true }
    const n = u[w + 1]
    if (n === 0) return false
    this.load(n, 0)
    return true
  }

  /**
   * Writes `n` entries from index `i` (all there) to `out` as bulk strings: LRANGE's loop, walking
   * each node's entries in locals rather than through `next` and the module's position variables.
   */
  replyRange (hd: number, i: number, n: number, out: { bulk (src: Buffer, s: number, e: number): void }): void {
    this.at(hd, i)
    let node = pNode
    let b = this.h.b[node >>> 23]
    let base = offOf(node) + NH
    let used = this.u(node)[this.w(node) + 3]
    let off = pOff
    for (; n > 0; n--) {
      if (off >= used) {
        node = this.u(node)[this.w(node) + 1]
        if (node === 0) return
        b = this.h.b[node >>> 23]
        base = offOf(node) + NH
        used = this.u(node)[this.w(node) + 3]
        off = 0
      }
      const p = base + off
      const l = b[p]
      const s = l < 128 ? p + 1 : p + 5
      const e = s + (l < 128 ? l : b.readUInt32LE(p + 1))
      out.bulk(b, s, e)
      off = e - base
    }
  }

  /** Moves to the entry before the current one; false at the start. */
  prev (): boolean {
    if (pOff > 0) { this.seekIn(pNode, this.indexIn(pNode, pOff) - 1); return true }
    const p = this.u(pNode)[this.w(pNode)]
    if (p === 0) return false
    this.seekIn(p, this.u(p)[this.w(p) + 2] - 1)
    return true
  }

  /** Positions at index i (0 <= i < count). */
  at (hd: number, i: number): void {
    const count = this.count(hd)
    if (i < count / 2) {
      let n = this.head(hd)
      for (let c = this.u(n)[this.w(n) + 2]; i >= c; c = this.u(n)[this.w(n) + 2]) { i -= c; n = this.u(n)[this.w(n) + 1] }
      this.seekIn(n, i)
    } else {
      let back = count - 1 - i
      let n = this.tail(hd)
      for (let c = this.u(n)[this.w(n) + 2]; back >= c; c = this.u(n)[this.w(n) + 2]) { back -= c; n = this.u(n)[this.w(n)] }
      this.seekIn(n, this.u(n)[this.w(n) + 2] - 1 - back)
    }
  }

  private seekIn (node: number, k: number): void {
    const b = this.h.b[node >>> 23]
    const base = offOf(node) + NH
    let off = 0
    for (let j = 0; j < k; j++) {
      const l = b[base + off]
      off += l < 128 ? 1 + l : 5 + b.readUInt32LE(base + off + 1)
    }
    this.load(node, off)
  }

  private indexIn (node: number, off: number): number {
    const b = this.h.b[node >>> 23]
    const base = offOf(node) + NH
    let k = 0
    for (let o = 0; o < off; k++) {
      const l = b[base + o]
      o += l < 128 ? 1 + l : 5 + b.readUInt32LE(base + o + 1)
    }
    return k
  }

  /** Pushes `src[s, e)` at the head (left) or tail. */
  push (hd: number, left: boolean, src: Buffer, s: number, e: number): void {
    const need = entrySize(e - s)
    const end = left ? this.head(hd) : this.tail(hd)
    if (end === 0 || this.u(end)[this.w(end) + 3] + need > NODE_MAX) {
      this.linkNew(hd, left ? 0 : end, left ? end : 0, need)
    }
    const n = left ? this.head(hd) : this.tail(hd)
    this.insertAt(hd, n, left ? 0 : this.u(n)[this.w(n) + 3], src, s, e)
  }

  /** Inserts `src[s, e)` before the entry at (node, off) (off = used appends). `src` must not be in this heap. */
  insertAt (hd: number, node: number, off: number, src: Buffer, s: number, e: number): void {
    const len = e - s
    const need = entrySize(len)
    let u = this.u(node)
    let w = this.w(node)
    if (u[w + 3] + need > u[w + 4]) {
      node = this.realloc(hd, node, u[w + 3] + need)
      u = this.u(node)
      w = this.w(node)
    }
    const b = this.h.b[node >>> 23]
    const p = offOf(node) + NH + off
    b.copyWithin(p + need, p, offOf(node) + NH + u[w + 3])
    if (len < 128) b[p] = len
    else { b[p] = 0x80; b.writeUInt32LE(len, p + 1) }
    copyBytes(b, p + need - len, src, s, e)
    u[w + 2]++
    u[w + 3] += need
    this.u(hd)[this.w(hd) + 2]++
    if (u[w + 3] > NODE_MAX && u[w + 2] > 1) this.split(hd, node)
  }

  /** Removes the entry at (node, off). */
  removeAt (hd: number, node: number, off: number): void {
    this.load(node, off)
    const size = eE - (offOf(node) + NH + off)
    const u = this.u(node)
    const w = this.w(node)
    const b = this.h.b[node >>> 23]
    const p = offOf(node) + NH + off
    b.copyWithin(p, p + size, offOf(node) + NH + u[w + 3])
    u[w + 2]--
    u[w + 3] -= size
    this.u(hd)[this.w(hd) + 2]--
    if (u[w + 2] === 0) this.unlink(hd, node)
  }

  /** Removes the first (left) or last entry. */
  removeEnd (hd: number, left: boolean): void {
    if (left) { this.removeAt(hd, this.head(hd), 0); return }
    const t = this.tail(hd)
    this.seekIn(t, this.u(t)[this.w(t) + 2] - 1)
    this.removeAt(hd, t, pOff)
  }

  /** A new empty node between `prev` and `next` (0 = list end). */
  private linkNew (hd: number, prev: number, next: number, need: number): number {
    const size = blockSize(NH + Math.max(need, 64))
    const n = this.h.alloc(size)
    const u = this.u(n)
    const w = this.w(n)
    u[w] = prev; u[w + 1] = next; u[w + 2] = 0; u[w + 3] = 0; u[w + 4] = size - NH
    this.relink(hd, n, prev, next)
    this.u(hd)[this.w(hd) + 3]++
    return n
  }

  /** Makes prev/next (or the header) point at node n. */
  private relink (hd: number, n: number, prev: number, next: number): void {
    if (prev === 0) this.u(hd)[this.w(hd)] = n
    else this.u(prev)[this.w(prev) + 1] = n
    if (next === 0) this.u(hd)[this.w(hd) + 1] = n
    else this.u(next)[this.w(next)] = n
  }

  private unlink (hd: number, node: number): void {
    const u = this.u(node)
    const w = this.w(node)
    const prev = u[w]
    const next = u[w + 1]
    if (prev === 0) this.u(hd)[this.w(hd)] = next
    else this.u(prev)[this.w(prev) + 1] = next
    if (next === 0) this.u(hd)[this.w(hd) + 1] = prev
    else this.u(next)[this.w(next)] = prev
    this.u(hd)[this.w(hd) + 3]--
    this.h.release(node, NH + u[w + 4])
  }

  /** Moves node into a block with room for `bytes` of entries; returns its new ref. */
  private realloc (hd: number, node: number, bytes: number): number {
    const u = this.u(node)
    const w = this.w(node)
    // The next size class (a quarter apart), as a listpack's realloc: doubling would leave a node up to half empty.
    const want = bytes
    const size = blockSize(NH + want)
    const n = this.h.alloc(size)
    this.h.b[node >>> 23].copy(this.h.b[n >>> 23], offOf(n), offOf(node), offOf(node) + NH + u[w + 3])
    this.u(n)[this.w(n) + 4] = size - NH
    this.relink(hd, n, u[w], u[w + 1])
    this.h.release(node, NH + u[w + 4])
    return n
  }

  /** Splits an overfull node in two at its middle entry. */
  private split (hd: number, node: number): void {
    const u = this.u(node)
    const w = this.w(node)
    const half = u[w + 2] >>> 1
    this.seekIn(node, half)
    const cut = pOff
    const rest = u[w + 3] - cut
    const n = this.linkNew(hd, node, u[w + 1], rest)
    const nu = this.u(n)
    const nw = this.w(n)
    this.h.b[node >>> 23].copy(this.h.b[n >>> 23], offOf(n) + NH, offOf(node) + NH + cut, offOf(node) + NH + u[w + 3])
    nu[nw + 2] = u[w + 2] - half
    nu[nw + 3] = rest
    u[w + 2] = half
    u[w + 3] = cut
  }
}
