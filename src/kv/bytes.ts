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
    for (; s + 4 <= e; s += 4, d += 4) dv.setUint32(d, sv.getUint32(s))
  }
  for (; s < e; s++) dst[d++] = src[s]
  return n
}
