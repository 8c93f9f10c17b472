/**
 * LZF, as liblzf (and so Redis) encodes it. A control byte below 32 starts a run of ctrl+1 literal
 * bytes; otherwise its top 3 bits are a length (7 means "add the next byte") and the rest, with the
 * next byte, a distance back into the output. Decompression checks every bound: the input is a file.
 */
import { rdbError } from './errors.ts'

/** Decompresses `src[s, e)` into exactly `outLen` bytes, or throws ERR_RDB_CORRUPT. */
export function lzfDecompress (src: Buffer, s: number, e: number, outLen: number): Buffer {
  const out = Buffer.allocUnsafe(outLen)
  let ip = s
  let op = 0
  while (ip < e) {
    const ctrl = src[ip++]
    if (ctrl < 32) {
      const n = ctrl + 1
      if (ip + n > e || op + n > outLen) throw rdbError('ERR_RDB_CORRUPT', 'lzf literal run overflows')
      src.copy(out, op, ip, ip + n)
      ip += n
      op += n
      continue
    }
    let len = ctrl >>> 5
    if (len === 7) {
      if (ip >= e) throw rdbError('ERR_RDB_CORRUPT', 'lzf back reference cut short')
      len += src[ip++]
    }
    if (ip >= e) throw rdbError('ERR_RDB_CORRUPT', 'lzf back reference cut short')
    let ref = op - ((ctrl & 0x1f) << 8) - src[ip++] - 1
    len += 2
    if (ref < 0 || op + len > outLen) throw rdbError('ERR_RDB_CORRUPT', 'lzf back reference out of range')
    // Byte by byte: a reference may overlap the bytes it produces.
    while (len-- > 0) out[op++] = out[ref++]
  }
  if (op !== outLen) throw rdbError('ERR_RDB_CORRUPT', `lzf output is ${op} bytes, expected ${outLen}`)
  return out
}

const MAX_HLOG = 14
const MAX_OFF = 1 << 13
const MAX_REF = (1 << 8) + (1 << 3)
const table = new Int32Array(1 << MAX_HLOG)

/**
 * Compresses `src`; returns null when the result would not be smaller (Redis then stores the string
 * raw). A hash of each 3-byte sequence remembers where it was last seen.
 */
export function lzfCompress (src: Buffer): Buffer | null {
  const n = src.length
  if (n < 4) return null
  const out = Buffer.allocUnsafe(n - 1)
  const limit = out.length
  // A table sized to the input: clearing 16K slots for every short value would cost more than compressing it.
  let hlog = 8
  while (hlog < MAX_HLOG && 1 << hlog < n) hlog++
  table.fill(-1, 0, 1 << hlog)
  let ip = 0
  let op = 1
  let lit = 0
  while (ip < n) {
    let len = 0
    let off = 0
    if (ip + 2 < n) {
      const h = Math.imul((src[ip] << 16) | (src[ip + 1] << 8) | src[ip + 2], 0x9e3779b1) >>> (32 - hlog)
      const ref = table[h]
      table[h] = ip
      off = ip - ref - 1
      if (ref >= 0 && off < MAX_OFF) len = matchLength(src, ref, ip)
    }
    if (len >= 3) {
      if (op + 3 >= limit) return null
      op = backReference(out, op, lit, len, off)
      lit = 0
      ip += len
      continue
    }
    if (op >= limit) return null
    out[op++] = src[ip++]
    if (++lit === 32) {
      out[op - lit - 1] = lit - 1
      lit = 0
      op++
    }
  }
  if (lit === 0) op--
  else out[op - lit - 1] = lit - 1
  return op >= n || op > limit ? null : out.subarray(0, op)
}

/** How many bytes at `ip` repeat those at `ref` (up to LZF's longest reference); under 3 is no match. */
function matchLength (src: Buffer, ref: number, ip: number): number {
  const max = Math.min(MAX_REF, src.length - ip)
  let len = 0
  while (len < max && src[ref + len] === src[ip + len]) len++
  return len
}

/**
 * Closes the literal run in progress (its header byte was reserved at `op - lit - 1`), writes a
 * back reference, and reserves the next run's header. Returns the new output position.
 */
function backReference (out: Buffer, op: number, lit: number, len: number, off: number): number {
  if (lit === 0) op--
  else out[op - lit - 1] = lit - 1
  const l = len - 2
  if (l < 7) {
    out[op++] = (l << 5) | (off >>> 8)
  } else {
    out[op++] = (7 << 5) | (off >>> 8)
    out[op++] = l - 7
  }
  out[op++] = off & 0xff
  return op + 1
}
