/**
 * Copies between Buffers for the per-request path. Buffer.copy costs 100-200 ns whatever the size
 * (a native call and a Uint8Array made per call), and a JS byte loop a few ns a byte; below a few
 * hundred bytes, four bytes at a time through DataViews is several times faster than either. The
 * views are cached for the last source and the last destination, which on the hot paths are the
 * same few Buffers call after call (the reply buffer, a heap segment, the read's chunk).
 *
 * A DataView is as safe as the Buffer it views: over a detached ArrayBuffer (released or gifted
 * memory) it throws instead of reading, and it never outlives what it views.
 */

/** Up to this many bytes, the DataView loop; above, Buffer.copy (measured crossover ~200 bytes). */
const SHORT = 192

const NONE = new Uint8Array(0)
let srcBuf: Uint8Array = NONE
let srcView: DataView<ArrayBufferLike> = new DataView(NONE.buffer)
let dstBuf: Uint8Array = NONE
let dstView: DataView<ArrayBufferLike> = new DataView(NONE.buffer)

/** Copies `src[s, e)` to `dst` at `d`; the two ranges must not overlap. Returns the byte count. */
export function copyBytes (dst: Uint8Array, d: number, src: Buffer, s: number, e: number): number {
  const n = e - s
  if (n > SHORT) return src.copy(dst, d, s, e)
  // Below 16 bytes a view made for a new source would cost more than the byte loop.
  if (n >= 16 || (n >= 4 && src === srcBuf && dst === dstBuf)) {
    if (src !== srcBuf) { srcBuf = src; srcView = new DataView(src.buffer, src.byteOffset, src.byteLength) }
    if (dst !== dstBuf) { dstBuf = dst; dstView = new DataView(dst.buffer, dst.byteOffset, dst.byteLength) }
    const sv = srcView
    const dv = dstView
    // Sixteen bytes an iteration: half the time of four for a 64-byte value (an LRANGE element).
    for (; s + 16 <= e; s += 16, d += 16) {
      dv.setUint32(d, sv.getUint32(s))
      dv.setUint32(d + 4, sv.getUint32(s + 4))
      dv.setUint32(d + 8, sv.getUint32(s + 8))
      dv.setUint32(d + 12, sv.getUint32(s + 12))
    }
    for (; s + 4 <= e; s += 4, d += 4) dv.setUint32(d, sv.getUint32(s))
  }
  for (; s < e; s++) dst[d++] = src[s]
  return n
}

let cmpBuf: Uint8Array = NONE
let cmpView: DataView<ArrayBufferLike> = new DataView(NONE.buffer)

/**
 * Orders `av[as, ae)` against `b[bs, be)` as Buffer.compare does (-1, 0, 1), four bytes at a time.
 * Sorted-set walks compare members dozens of times per command, and the members of one set often
 * share a long prefix ("element:000000..."): a byte loop, or Buffer's compare (five arguments
 * validated and a call into C++ each time), costs several times more. `av` is a heap arena's
 * DataView; `b`'s is cached, as it is the same request buffer for every compare of a command.
 */
export function compareAt (av: DataView, as: number, ae: number, b: Uint8Array, bs: number, be: number): number {
  const la = ae - as
  const lb = be - bs
  const n = la < lb ? la : lb
  if (b !== cmpBuf) { cmpBuf = b; cmpView = new DataView(b.buffer, b.byteOffset, b.byteLength) }
  const bv = cmpView
  let i = 0
  for (; i + 4 <= n; i += 4) {
    const x = av.getUint32(as + i)
    const y = bv.getUint32(bs + i)
    if (x !== y) return x < y ? -1 : 1
  }
  for (; i < n; i++) {
    const x = av.getUint8(as + i)
    const y = bv.getUint8(bs + i)
    if (x !== y) return x < y ? -1 : 1
  }
  return la === lb ? 0 : la < lb ? -1 : 1
}
