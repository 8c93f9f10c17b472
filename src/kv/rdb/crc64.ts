/**
 * Redis's CRC64 (Jones polynomial 0xad93d23594c935a9, reflected, init 0, no final xor), the checksum
 * at the end of every RDB file. Kept as two u32 halves: BigInt per byte would be far too slow.
 */

// Slice-by-8 tables: T[k] advances a byte k positions further; lo halves at [k*512 + i], hi at [+256].
const T = new Uint32Array(8 * 512)
// The reflected form of 0xad93d23594c935a9.
const POLY_HI = 0x95ac9329
const POLY_LO = 0xac4bc9b5

for (let i = 0; i < 256; i++) {
  let lo = i
  let hi = 0
  for (let b = 0; b < 8; b++) {
    const carry = lo & 1
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0
    hi = hi >>> 1
    if (carry !== 0) {
      lo = (lo ^ POLY_LO) >>> 0
      hi = (hi ^ POLY_HI) >>> 0
    }
  }
  T[i] = lo
  T[256 + i] = hi
}
for (let k = 1; k < 8; k++) {
  for (let i = 0; i < 256; i++) {
    const plo = T[(k - 1) * 512 + i]
    const phi = T[(k - 1) * 512 + 256 + i]
    const x = plo & 0xff
    T[k * 512 + i] = (((plo >>> 8) | (phi << 24)) ^ T[x]) >>> 0
    T[k * 512 + 256 + i] = ((phi >>> 8) ^ T[256 + x]) >>> 0
  }
}

/** A running CRC64 over bytes fed in any number of pieces. */
export class Crc64 {
  lo = 0
  hi = 0

  update (b: Uint8Array, s = 0, e = b.length): void {
    let lo = this.lo
    let hi = this.hi
    let i = s
    for (; i + 8 <= e; i += 8) {
      lo ^= b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)
      hi ^= b[i + 4] | (b[i + 5] << 8) | (b[i + 6] << 16) | (b[i + 7] << 24)
      const a0 = (7 << 9) + (lo & 0xff)
      const a1 = (6 << 9) + ((lo >>> 8) & 0xff)
      const a2 = (5 << 9) + ((lo >>> 16) & 0xff)
      const a3 = (4 << 9) + (lo >>> 24)
      const a4 = (3 << 9) + (hi & 0xff)
      const a5 = (2 << 9) + ((hi >>> 8) & 0xff)
      const a6 = (1 << 9) + ((hi >>> 16) & 0xff)
      const a7 = hi >>> 24
      lo = T[a0] ^ T[a1] ^ T[a2] ^ T[a3] ^ T[a4] ^ T[a5] ^ T[a6] ^ T[a7]
      hi = T[a0 + 256] ^ T[a1 + 256] ^ T[a2 + 256] ^ T[a3 + 256] ^ T[a4 + 256] ^ T[a5 + 256] ^ T[a6 + 256] ^ T[a7 + 256]
    }
    for (; i < e; i++) {
      const x = (lo ^ b[i]) & 0xff
      lo = ((lo >>> 8) | (hi << 24)) ^ T[x]
      hi = (hi >>> 8) ^ T[256 + x]
    }
    this.lo = lo >>> 0
    this.hi = hi >>> 0
  }

  /** The checksum as Redis stores it: 8 bytes, little-endian. */
  bytes (): Buffer {
    const b = Buffer.allocUnsafe(8)
    b.writeUInt32LE(this.lo, 0)
    b.writeUInt32LE(this.hi, 4)
    return b
  }

  hex (): string {
    return this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0')
  }
}
