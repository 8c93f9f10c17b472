/**
 * Deterministic test data: the value of key i is a function of i, so that anyone can check a key
 * without keeping a copy, and a checksum over a key range verifies a whole dataset.
 */

export function keyName (prefix: string, i: number): string {
  return `${prefix}${String(i).padStart(10, '0')}`
}

let scratch = new Int32Array(1024)

/** Fills `out` with the value of key i (version `v`, so that overwrites are visible): xorshift words. */
export function fillValue (out: Buffer, i: number, v = 0): Buffer {
  let x = (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(v + 1, 0x85ebca6b)) | 1
  const words = out.length >>> 2
  if (scratch.length < words) scratch = new Int32Array(words * 2)
  for (let k = 0; k < words; k++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    scratch[k] = x
  }
  out.set(new Uint8Array(scratch.buffer, 0, words << 2))
  for (let k = words << 2; k < out.length; k++) out[k] = 97 + (k % 26)
  return out
}

/** Sums of two per-key 32-bit hashes over key and value: independent of the order keys are seen in. */
export class Checksum {
  private low = 0
  private high = 0
  count = 0
  add (key: string, value: Buffer): void {
    let h1 = 0x811c9dc5
    let h2 = 0x01000193 ^ value.length
    for (let k = 0; k < key.length; k++) h1 = Math.imul(h1 ^ key.charCodeAt(k), 0x01000193)
    const words = value.length & ~3
    for (let k = 0; k < words; k += 4) {
      const w = value[k] | (value[k + 1] << 8) | (value[k + 2] << 16) | (value[k + 3] << 24)
      h1 = Math.imul(h1 ^ w, 0x01000193)
      h2 = Math.imul(h2 ^ w, 0x5bd1e995) ^ (h2 >>> 15)
    }
    for (let k = words; k < value.length; k++) h1 = Math.imul(h1 ^ value[k], 0x01000193)
    this.low = (this.low + (h1 >>> 0)) % 0x100000000
    this.high = (this.high + (h2 >>> 0)) % 0x100000000
    this.count++
  }

  /** The sum as one 64-bit value. */
  get sum (): bigint {
    return (BigInt(this.high) << 32n) | BigInt(this.low)
  }
}
