/**
 * Deterministic test data: the value of key i is a function of i, so that anyone can check a key
 * without keeping a copy, and a checksum over a key range verifies a whole dataset.
 */

export function keyName (prefix: string, i: number): string {
  return `${prefix}${String(i).padStart(10, '0')}`
}

/** Fills `out` with the value of key i (version `v`, so that overwrites are visible). */
export function fillValue (out: Buffer, i: number, v = 0): Buffer {
  let x = (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(v + 1, 0x85ebca6b)) >>> 0
  for (let k = 0; k < out.length; k++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    out[k] = 97 + ((x >>> 0) % 26)
  }
  return out
}

export function valueOf (i: number, size: number, v = 0): Buffer {
  return fillValue(Buffer.allocUnsafe(size), i, v)
}

/** FNV-1a over values, order-independent across keys (sum of per-key hashes). */
export class Checksum {
  sum = 0n
  count = 0
  add (key: string, value: Buffer): void {
    let h = 0x811c9dc5
    for (let k = 0; k < key.length; k++) h = Math.imul(h ^ key.charCodeAt(k), 0x01000193)
    for (let k = 0; k < value.length; k++) h = Math.imul(h ^ value[k], 0x01000193)
    this.sum = (this.sum + BigInt(h >>> 0)) & 0xffffffffffffffffn
    this.count++
  }
}
