/**
 * A string -> bytes cache in giftable memory, on pagegift-kv's engine (its hash index and
 * log-structured segments, src/kv/store.ts): the whole map is a handful of regions, so a successor
 * maps it in O(1) and it is warm there, at any size, with no reload.
 *
 * Eviction: entries may carry a TTL; past `maxBytes`, an approximate LRU (as Redis's) evicts the
 * least recently used of a few sampled entries (ms resolution). The access time lives in the spare word of each
 * record's header, so it moves with the record through rewrites and compaction.
 */
import { alloc, release } from '../index.ts'
import { Compactor } from '../kv/compactor.ts'
import { ExpirySweeper } from '../kv/expiry.ts'
import type { Allocator } from '../kv/segments.ts'
import { Store, type StoreMeta } from '../kv/store.ts'

export interface LiveMapOptions {
  /** Limit on live entries plus the index, in bytes; past it, set() evicts (LRU). 0 = no limit. Default 0. */
  maxBytes?: number
  /** Default time to live of an entry, in ms; 0 = none. Default 0. */
  ttlMs?: number
  /** Bytes per segment region. Default 32 MiB. */
  segmentSize?: number
}

export interface LiveMapStats { hits: number, misses: number, sets: number, evictions: number, refused: number }

/** 'live': serving; 'frozen': handed over but not committed (reads miss, writes refused); 'gone': the successor owns the memory. */
export type MapState = 'live' | 'frozen' | 'gone'

const SAMPLES = 5
const MAX_KEY = 64 * 1024
/** The record header's spare u32 (see src/kv/segments.ts): here, the last access, in ms modulo 2^32. */
const ACCESS_WORD = 3

export class LiveMap {
  readonly name: string
  readonly stats: LiveMapStats = { hits: 0, misses: 0, sets: 0, evictions: 0, refused: 0 }
  state: MapState = 'live'
  #store: Store
  #ttlMs: number
  #key = Buffer.allocUnsafe(1024)
  #compactor: Compactor
  #sweeper: ExpirySweeper
  #timer: NodeJS.Timeout

  /** @internal Use LiveMap.attach(gen, name, opts), or new LiveMap(name, opts) outside a handoff. */
  constructor (name: string, opts: LiveMapOptions = {}, store?: Store) {
    if (typeof name !== 'string' || !/^[\w.-]{1,64}$/.test(name)) throw new TypeError('The "name" argument must be 1 to 64 characters of [A-Za-z0-9_.-]')
    const o = checkOptions(opts)
    this.name = name
    this.#ttlMs = o.ttlMs
    this.#store = store ?? new Store({ allocator: giftable(name), maxmemory: o.maxBytes, segmentSize: o.segmentSize })
    if (store !== undefined) this.#store.maxmemory = o.maxBytes
    this.#compactor = new Compactor(this.#store)
    this.#sweeper = new ExpirySweeper(this.#store)
    // Background upkeep between requests: expiry, index growth, compaction, each in small slices.
    this.#timer = setInterval(() => this.#upkeep(), 10)
    this.#timer.unref()
  }

  /** Wraps regions and meta from exportState() (a predecessor's), without copying or scanning them. */
  static adopt (name: string, regions: Record<string, ArrayBuffer>, meta: StoreMeta, opts: LiveMapOptions = {}): LiveMap {
    return new LiveMap(name, opts, Store.adopt({ regions, meta }, { allocator: giftable(name) }))
  }

  get size (): number { return this.state === 'live' ? this.#store.size : 0 }
  /** Bytes counted against maxBytes: live entries plus the index. */
  get bytes (): number { return this.#store.usedBytes }

  /** A copy of the value, or undefined (missing, expired, or this generation no longer owns the map). */
  get (key: string): Buffer | undefined {
    const slot = this.#find(key)
    if (slot < 0) {
      this.stats.misses++
      return undefined
    }
    this.stats.hits++
    const st = this.#store
    st.seg.u32[(st.off >>> 2) + ACCESS_WORD] = clock()
    const start = st.seg.valStart(st.off)
    return Buffer.from(st.seg.bytes.subarray(start, start + st.seg.valLen(st.off)))
  }

  has (key: string): boolean { return this.#find(key) >= 0 }

  /** Stores a copy of `value`. False when refused: frozen or gone, or bigger than maxBytes. */
  set (key: string, value: Uint8Array | string, opts: { ttlMs?: number } = {}): boolean {
    const v = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    const ttl = opts.ttlMs ?? this.#ttlMs
    if (!(ttl >= 0)) throw new RangeError(`The "opts.ttlMs" argument must be >= 0. Received ${ttl}`)
    if (this.state !== 'live') { this.stats.refused++; return false }
    const k = this.#encode(key)
    const st = this.#store
    st.now = Date.now()
    const expireAt = ttl > 0 ? st.now + ttl : 0
    for (let attempt = 0; attempt < 4096; attempt++) {
      const slot = st.find(this.#key, 0, k)
      if (st.write(slot, this.#key, 0, k, v, 0, v.length, expireAt)) {
        st.find(this.#key, 0, k)
        st.seg.u32[(st.off >>> 2) + ACCESS_WORD] = clock()
        this.stats.sets++
        return true
      }
      if (!this.#evictOne()) break
    }
    this.stats.refused++
    return false
  }

  delete (key: string): boolean {
    if (this.state !== 'live') { this.stats.refused++; return false }
    const slot = this.#find(key)
    if (slot < 0) return false
    this.#store.removeAt(slot)
    return true
  }

  clear (): void {
    if (this.state === 'live') this.#store.flush()
  }

  /** The regions and meta a successor needs (LiveMap.adopt). */
  exportState (): { regions: Record<string, ArrayBuffer>, meta: StoreMeta } {
    return this.#store.exportState()
  }

  /** Stops the upkeep timer; the regions stay mapped until the process exits or they are handed over. */
  close (): void {
    clearInterval(this.#timer)
  }

  #find (key: string): number {
    if (this.state !== 'live') return -1
    const k = this.#encode(key)
    this.#store.now = Date.now()
    return this.#store.find(this.#key, 0, k)
  }

  #encode (key: string): number {
    if (typeof key !== 'string') throw new TypeError('The "key" argument must be a string')
    const max = Buffer.byteLength(key)
    if (max > MAX_KEY) throw new RangeError(`The "key" argument is longer than ${MAX_KEY} bytes`)
    if (max > this.#key.length) this.#key = Buffer.allocUnsafe(Math.max(max, this.#key.length * 2))
    return this.#key.write(key, 0)
  }

  /** Approximate LRU: of a few occupied slots picked at random, removes the least recently used. */
  #evictOne (): boolean {
    const st = this.#store
    const t = st.index.t
    const cap = st.index.capacity
    if (st.size === 0) return false
    let victim = -1
    let oldest = -1
    const now = clock()
    for (let found = 0, tries = 0; found < SAMPLES && tries < SAMPLES * 64; tries++) {
      const slot = (Math.random() * cap) | 0
      if (t[slot << 2] === 0 || !st.at(slot)) continue
      found++
      // The age survives the clock's wrap (every 49 days) as long as entries are younger than that.
      const age = (now - st.seg.u32[(st.off >>> 2) + ACCESS_WORD]) >>> 0
      if (age > oldest) { oldest = age; victim = slot }
    }
    if (victim < 0) return false
    st.removeAt(victim)
    this.stats.evictions++
    return true
  }

  #upkeep (): void {
    if (this.state !== 'live') return
    const st = this.#store
    st.now = Date.now()
    this.#sweeper.sweep(2048)
    st.prepareGrowth(64)
    st.growthStep(16384)
    this.#compactor.step(1)
  }
}

const clock = (): number => Date.now() >>> 0

function giftable (name: string): Allocator {
  return {
    alloc: (bytes, part) => alloc(bytes, { name: `pagegift-map.${name}.${part}` }),
    release: (region) => { release(region) },
  }
}

function checkOptions (opts: LiveMapOptions): Required<LiveMapOptions> {
  if (opts === null || typeof opts !== 'object') throw new TypeError('The "opts" argument must be an object')
  const num = (x: unknown, what: string, dflt: number, min = 0): number => {
    if (x === undefined) return dflt
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) throw new RangeError(`The "opts.${what}" argument must be an integer >= ${min}. Received ${String(x)}`)
    return x
  }
  return { maxBytes: num(opts.maxBytes, 'maxBytes', 0), ttlMs: num(opts.ttlMs, 'ttlMs', 0), segmentSize: num(opts.segmentSize, 'segmentSize', 32 << 20, 4096) }
}
