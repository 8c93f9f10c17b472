/**
 * The hash index: open addressing with linear probing, in one region. Slot i holds four u32 words:
 * the key's hash (0 = empty), the segment id and the byte offset of its record, and one spare word.
 * Deletion shifts later entries back (no tombstones), so lookups never degrade with churn.
 */

export const SLOT_BYTES = 16
/** Past this load the index starts growing (incrementally); past MAX_LOAD growth must finish first. */
const GROW_LOAD = 0.7
const MAX_LOAD = 0.9

/** FNV-1a with a murmur finalizer, unseeded: for the fixed command table, and stores made before seeding. Never 0. */
export function hashKey (b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i], 0x01000193)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  return (h >>> 0) || 1
}

const rotl = (x: number, b: number): number => (x << b) | (x >>> (32 - b))

/**
 * The keyspace's hash: HalfSipHash-1-3 (the keyed hash Linux uses for its hash tables) with a
 * random 64-bit key per store. A client that cannot learn the key cannot choose keys that pile into
 * one probe run (hash flooding), as it could with an unseeded hash. The key is part of the store's
 * state: a successor adopts it with the index, whose slots it decides.
 */
export class KeyHash {
  /**
   * The seed as int32s, as the hash's 32-bit arithmetic reads it anyway (the same bits). A seed word
   * of 2^31 or more is a heap number in V8, not a small integer: fed to `rotl`, optimised for small
   * integers by a successor's warm-up, it deoptimised the hash on the first lookup after a live
   * upgrade (--trace-deopt: "not a Smi").
   */
  readonly #s0: number
  readonly #s1: number

  /** `legacy`: the unseeded FNV of stores made before seeding (meta version 1), kept so they can still be adopted. */
  constructor (readonly k0: number, readonly k1: number, readonly legacy = false) {
    this.#s0 = k0 | 0
    this.#s1 = k1 | 0
  }

  /** The hash a store's meta names: version 1 is the unseeded legacy one, version 2 carries its seed. */
  static fromMeta (version: number, seed: unknown): KeyHash {
    if (version === 1) return new KeyHash(0, 0, true)
    const u32 = (x: unknown): boolean => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 0xffffffff
    if (!Array.isArray(seed) || seed.length !== 2 || !seed.every(u32)) throw new TypeError('kv store meta: bad hash seed')
    return new KeyHash(seed[0], seed[1])
  }

  static random (): KeyHash {
    const k = crypto.getRandomValues(new Uint32Array(2))
    return new KeyHash(k[0], k[1])
  }

  /** Hash of `b[start, end)`; never 0, because 0 marks an empty slot. */
  of (b: Uint8Array, start: number, end: number): number {
    if (this.legacy) return hashKey(b, start, end)
    // Locals and the round written out: this runs on every lookup.
    let v0 = this.#s0
    let v1 = this.#s1
    let v2 = 0x6c796765 ^ v0
    let v3 = 0x74656462 ^ v1
    const len = end - start
    const whole = start + (len & ~3)
    let last = len << 24
    for (let i = whole, shift = 0; i < end; i++, shift += 8) last |= b[i] << shift
    for (let i = start; i <= whole; i += 4) {
      const m = i < whole ? b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24) : last
      v3 ^= m
      v0 = (v0 + v1) | 0; v1 = rotl(v1, 5) ^ v0; v0 = rotl(v0, 16)
      v2 = (v2 + v3) | 0; v3 = rotl(v3, 8) ^ v2
      v0 = (v0 + v3) | 0; v3 = rotl(v3, 7) ^ v0
      v2 = (v2 + v1) | 0; v1 = rotl(v1, 13) ^ v2; v2 = rotl(v2, 16)
      v0 ^= m
    }
    v2 ^= 0xff
    for (let r = 0; r < 3; r++) {
      v0 = (v0 + v1) | 0; v1 = rotl(v1, 5) ^ v0; v0 = rotl(v0, 16)
      v2 = (v2 + v3) | 0; v3 = rotl(v3, 8) ^ v2
      v0 = (v0 + v3) | 0; v3 = rotl(v3, 7) ^ v0
      v2 = (v2 + v1) | 0; v1 = rotl(v1, 13) ^ v2; v2 = rotl(v2, 16)
    }
    return ((v1 ^ v3) >>> 0) || 1
  }
}

export class KeyIndex {
  readonly region: ArrayBuffer
  readonly t: Uint32Array
  readonly capacity: number
  readonly mask: number
  count: number

  /** Wraps `region` (capacity = region bytes / 16, a power of two) holding `count` keys. */
  constructor (region: ArrayBuffer, count: number) {
    const cap = Math.floor(region.byteLength / SLOT_BYTES)
    if (cap < 2 || (cap & (cap - 1)) !== 0) throw new RangeError(`index region of ${region.byteLength} bytes is not a power-of-two slot count`)
    this.region = region
    this.t = new Uint32Array(region, 0, cap * 4)
    this.capacity = cap
    this.mask = cap - 1
    this.count = count
  }

  static bytesFor (capacity: number): number {
    return capacity * SLOT_BYTES
  }

  /** True when it is time to start growing. */
  crowded (): boolean {
    return this.count + 1 > this.capacity * GROW_LOAD
  }

  /** True when one more key would pass the load limit. */
  full (): boolean {
    return this.count + 1 > this.capacity * MAX_LOAD
  }

  /** Fills empty slot `i` (found by a probe for `hash`). */
  put (i: number, hash: number, seg: number, off: number): void {
    const w = i << 2
    this.t[w] = hash
    this.t[w + 1] = seg
    this.t[w + 2] = off
    this.count++
  }

  /** Empties slot `i` and shifts back the entries after it that probed past it, reporting each move. */
  removeAt (i: number, shifted?: (from: number, to: number) => void): void {
    const t = this.t
    const mask = this.mask
    let hole = i
    let j = (i + 1) & mask
    while (t[j << 2] !== 0) {
      const home = t[j << 2] & mask
      const between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
      if (!between) {
        const from = j << 2
        const to = hole << 2
        t[to] = t[from]
        t[to + 1] = t[from + 1]
        t[to + 2] = t[from + 2]
        shifted?.(j, hole)
        hole = j
      }
      j = (j + 1) & mask
    }
    const w = hole << 2
    t[w] = 0
    t[w + 1] = 0
    t[w + 2] = 0
    this.count--
  }

  /** Moves every entry into `into` (a larger, empty index): O(n), used only on growth. */
  rehashInto (into: KeyIndex): void {
    const t = this.t
    const dst = into.t
    const mask = into.mask
    for (let w = 0; w < t.length; w += 4) {
      const h = t[w]
      if (h === 0) continue
      let j = h & mask
      while (dst[j << 2] !== 0) j = (j + 1) & mask
      into.put(j, h, t[w + 1], t[w + 2])
    }
  }
}
