/**
 * The packed encodings inside RDB values: ziplist (read), listpack and intset (read and write).
 * Every read is bounds-checked against the blob, since the blob comes from a file.
 */
import { packedValidator as v } from './errors.ts'

/** Redis's string2ll: the canonical decimal form of a 64-bit integer, or null. */
export function canonicalInt (b: Buffer): bigint | null {
  const n = b.length
  if (n === 0 || n > 20) return null
  let i = 0
  if (b[0] === 45) { if (n === 1) return null; i = 1 }
  if (b[i] === 48 && n > i + 1) return null
  if (b[i] === 48 && i === 1) return null
  for (let k = i; k < n; k++) if (b[k] < 48 || b[k] > 57) return null
  const x = BigInt(b.toString('latin1'))
  return x < -(2n ** 63n) || x > 2n ** 63n - 1n ? null : x
}

function intBuf (x: number | bigint): Buffer {
  return Buffer.from(String(x), 'latin1')
}

/** Decodes a ziplist (Redis < 7 small lists, hashes and zsets) into its entries as strings. */
export function readZiplist (z: Buffer): Buffer[] {
  if (z.length < 11) v.fail('ziplist shorter than its header')
  if (z.readUInt32LE(0) !== z.length) v.fail('ziplist byte count does not match its length')
  const out: Buffer[] = []
  let p = 10
  for (;;) {
    if (p >= z.length) v.fail('ziplist has no end marker')
    if (z[p] === 0xff) break
    p += z[p] === 0xfe ? 5 : 1
    if (p >= z.length) v.fail('ziplist entry cut short')
    const enc = z[p]
    const kind = enc >>> 6
    let len = -1
    if (kind === 0) { len = enc & 0x3f; p += 1 } else if (kind === 1) {
      need(z, p, 2); len = ((enc & 0x3f) << 8) | z[p + 1]; p += 2
    } else if (kind === 2) {
      need(z, p, 5); len = z.readUInt32BE(p + 1); p += 5
    }
    if (len >= 0) {
      need(z, p, len)
      out.push(Buffer.from(z.subarray(p, p + len)))
      p += len
      continue
    }
    p += 1
    let x: number | bigint
    if (enc === 0xc0) { need(z, p, 2); x = z.readInt16LE(p); p += 2 } else if (enc === 0xd0) { need(z, p, 4); x = z.readInt32LE(p); p += 4 } else if (enc === 0xe0) { need(z, p, 8); x = z.readBigInt64LE(p); p += 8 } else if (enc === 0xf0) { need(z, p, 3); x = z.readIntLE(p, 3); p += 3 } else if (enc === 0xfe) { need(z, p, 1); x = z.readInt8(p); p += 1 } else if (enc >= 0xf1 && enc <= 0xfd) x = (enc & 0x0f) - 1
    else return v.fail(`ziplist entry encoding 0x${enc.toString(16)} is invalid`)
    out.push(intBuf(x))
  }
  if (p !== z.length - 1) v.fail('ziplist end marker before its end')
  const count = z.readUInt16LE(8)
  if (count !== 0xffff && count !== out.length) v.fail(`ziplist says ${count} entries, has ${out.length}`)
  return out
}

function need (b: Buffer, p: number, n: number): void {
  if (p + n > b.length) v.fail('packed entry runs past the end of its blob')
}

/** Decodes a listpack into its entries as strings. */
export function readListpack (z: Buffer): Buffer[] {
  if (z.length < 7) v.fail('listpack shorter than its header')
  if (z.readUInt32LE(0) !== z.length) v.fail('listpack byte count does not match its length')
  const out: Buffer[] = []
  let p = 6
  for (;;) {
    if (p >= z.length) v.fail('listpack has no end marker')
    const enc = z[p]
    if (enc === 0xff) break
    const start = p
    let x: number | bigint | null = null
    let s = -1
    let len = 0
    if (enc < 0x80) { x = enc; p += 1 } else if ((enc & 0xc0) === 0x80) { len = enc & 0x3f; s = p + 1 } else if ((enc & 0xe0) === 0xc0) {
      need(z, p, 2); x = (((enc & 0x1f) << 8) | z[p + 1]); if (x >= 4096) x -= 8192; p += 2
    } else if ((enc & 0xf0) === 0xe0) { need(z, p, 2); len = ((enc & 0x0f) << 8) | z[p + 1]; s = p + 2 } else if (enc === 0xf0) { need(z, p, 5); len = z.readUInt32LE(p + 1); s = p + 5 } else if (enc === 0xf1) { need(z, p, 3); x = z.readInt16LE(p + 1); p += 3 } else if (enc === 0xf2) { need(z, p, 4); x = z.readIntLE(p + 1, 3); p += 4 } else if (enc === 0xf3) { need(z, p, 5); x = z.readInt32LE(p + 1); p += 5 } else if (enc === 0xf4) { need(z, p, 9); x = z.readBigInt64LE(p + 1); p += 9 } else return v.fail(`listpack entry encoding 0x${enc.toString(16)} is invalid`)
    if (s >= 0) {
      need(z, s, len)
      out.push(Buffer.from(z.subarray(s, s + len)))
      p = s + len
    } else out.push(intBuf(x as number | bigint))
    const back = backlenSize(p - start)
    need(z, p, back)
    if (readBacklen(z, p + back - 1) !== p - start) v.fail('listpack entry back length does not match')
    p += back
  }
  if (p !== z.length - 1) v.fail('listpack end marker before its end')
  const count = z.readUInt16LE(4)
  if (count !== 0xffff && count !== out.length) v.fail(`listpack says ${count} entries, has ${out.length}`)
  return out
}

function backlenSize (l: number): number {
  // Redis's lpEncodeBacklen thresholds (16383 itself takes 3 bytes there).
  return l <= 127 ? 1 : l < 16383 ? 2 : l < 2097151 ? 3 : l < 268435455 ? 4 : 5
}

/** Reads a back length ending at `p` (it is read right to left, 7 bits a byte). */
function readBacklen (z: Buffer, p: number): number {
  let v = 0
  let shift = 0
  for (;;) {
    const b = z[p]
    v += (b & 127) * 2 ** shift
    if ((b & 128) === 0) return v
    shift += 7
    p--
  }
}

/** Decodes an intset into its members as decimal strings. */
export function readIntset (z: Buffer): Buffer[] {
  if (z.length < 8) v.fail('intset shorter than its header')
  const width = z.readUInt32LE(0)
  if (width !== 2 && width !== 4 && width !== 8) v.fail(`intset element width ${width} is invalid`)
  const n = z.readUInt32LE(4)
  if (8 + n * width !== z.length) v.fail('intset length does not match its element count')
  const out: Buffer[] = []
  let prev: bigint | null = null
  for (let i = 0, p = 8; i < n; i++, p += width) {
    const x = width === 2 ? BigInt(z.readInt16LE(p)) : width === 4 ? BigInt(z.readInt32LE(p)) : z.readBigInt64LE(p)
    if (prev !== null && x <= prev) v.fail('intset members are not sorted and unique')
    prev = x
    out.push(intBuf(x))
  }
  return out
}

/** Encodes strings as a listpack, integers in their integer encodings as Redis's lpAppend does. */
export function writeListpack (items: Buffer[]): Buffer {
  const parts: Buffer[] = []
  let total = 7
  for (const it of items) {
    const e = encodeEntry(it)
    parts.push(e)
    total += e.length
  }
  const out = Buffer.allocUnsafe(total)
  out.writeUInt32LE(total, 0)
  out.writeUInt16LE(items.length < 0xffff ? items.length : 0xffff, 4)
  let p = 6
  for (const e of parts) p += e.copy(out, p)
  out[p] = 0xff
  return out
}

function encodeEntry (it: Buffer): Buffer {
  const x = it.length <= 20 ? canonicalInt(it) : null
  let head: Buffer
  if (x !== null) head = encodeInt(x)
  else if (it.length < 64) head = Buffer.concat([Buffer.from([0x80 | it.length]), it])
  else if (it.length < 4096) head = Buffer.concat([Buffer.from([0xe0 | (it.length >>> 8), it.length & 0xff]), it])
  else {
    const h = Buffer.allocUnsafe(5)
    h[0] = 0xf0
    h.writeUInt32LE(it.length, 1)
    head = Buffer.concat([h, it])
  }
  return Buffer.concat([head, encodeBacklen(head.length)])
}

function encodeInt (x: bigint): Buffer {
  if (x >= 0n && x <= 127n) return Buffer.from([Number(x)])
  if (x >= -4096n && x <= 4095n) {
    const u = Number(x < 0n ? x + 8192n : x)
    return Buffer.from([0xc0 | (u >>> 8), u & 0xff])
  }
  if (x >= -32768n && x <= 32767n) { const b = Buffer.allocUnsafe(3); b[0] = 0xf1; b.writeInt16LE(Number(x), 1); return b }
  if (x >= -8388608n && x <= 8388607n) { const b = Buffer.allocUnsafe(4); b[0] = 0xf2; b.writeIntLE(Number(x), 1, 3); return b }
  if (x >= -2147483648n && x <= 2147483647n) { const b = Buffer.allocUnsafe(5); b[0] = 0xf3; b.writeInt32LE(Number(x), 1); return b }
  const b = Buffer.allocUnsafe(9)
  b[0] = 0xf4
  b.writeBigInt64LE(x, 1)
  return b
}

function encodeBacklen (l: number): Buffer {
  const n = backlenSize(l)
  const b = Buffer.allocUnsafe(n)
  // Read right to left: the last byte holds the lowest 7 bits, every byte but the first has the continuation bit.
  for (let i = n - 1, rest = l; i >= 0; i--, rest = Math.floor(rest / 128)) b[i] = (rest & 127) | (i === 0 ? 0 : 128)
  return b
}

/** Encodes sorted, distinct integers as an intset of the narrowest width. */
export function writeIntset (xs: bigint[]): Buffer {
  const sorted = [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  let width = 2
  for (const x of sorted) {
    if (x < -2147483648n || x > 2147483647n) width = 8
    else if ((x < -32768n || x > 32767n) && width < 4) width = 4
  }
  const b = Buffer.allocUnsafe(8 + sorted.length * width)
  b.writeUInt32LE(width, 0)
  b.writeUInt32LE(sorted.length, 4)
  sorted.forEach((x, i) => {
    const p = 8 + i * width
    if (width === 2) b.writeInt16LE(Number(x), p)
    else if (width === 4) b.writeInt32LE(Number(x), p)
    else b.writeBigInt64LE(x, p)
  })
  return b
}
