/**
 * The keyspace: a hash index region plus segment regions, nothing else. A successor wraps the same
 * regions with `Store.adopt` in O(1): no per-key work, no JS object per key.
 */
import { KeyHash, KeyIndex } from './keyindex.ts'
import { IndexMigration, SpareIndex } from './migration.ts'
import { Segment, HEADER, recordSize, heapAllocator, type Allocator, type SegmentMeta } from './segments.ts'
import { ExpiryQueue } from './expiry-queue.ts'

export interface StoreOptions {
  allocator?: Allocator
  /** Bytes per segment region; a bigger record gets a segment of its own size. */
  segmentSize?: number
  /** Limit on live data plus index, in bytes; 0 = none. */
  maxmemory?: number
  initialSlots?: number
}

/** Everything besides the regions that a successor needs; small and JSON-safe. */
export interface StoreMeta {
  /** 2 since the hash is seeded; a version 1 store (unseeded FNV) is still adopted, with its hash. */
  version: 1 | 2
  /** The hash key (two u32): it decides every key's slot, so it travels with the index. */
  seed?: [number, number]
  count: number
  expires: number
  liveBytes: number
  active: number
  segmentSize: number
  segments: SegmentMeta[]
  /** The collections heap's meta (types/heap.ts), when the store has one. */
  types?: unknown
}

export interface StoreState { regions: Record<string, ArrayBuffer>, meta: StoreMeta }

export const KEEP_TTL = -1

/** `storeEvents.hook`'s kinds: a key the store added, or one it deleted because its time had passed. */
export const NEW_KEY = 0
export const EXPIRED_KEY = 1
/**
 * Keyspace notifications (notify.ts) of what the store does on its own. Null while they are off,
 * so that each add or expiry costs one check.
 */
export const storeEvents: { hook: ((store: Store, kind: number, b: Buffer, s: number, e: number) => void) | null } = { hook: null }

/**
 * What a type whose value is not self-contained (its record points at structures of its own) must
 * do when its record goes away or is copied into another store. Strings need none of it.
 */
export interface TypeOps {
  /** The record at seg/off is being deleted or overwritten: free what it points at. */
  drop?: (store: Store, seg: Segment, off: number) => void
  /** The value to write in `to` for a copy of the record at seg/off of `from` (COPY, MOVE). */
  copy?: (from: Store, seg: Segment, off: number, to: Store) => Buffer
  /** MEMORY USAGE: bytes held for the record at seg/off besides the record itself. */
  extraBytes?: (store: Store, seg: Segment, off: number) => number
  /** OBJECT ENCODING's answer for the record at seg/off. */
  encoding?: (store: Store, seg: Segment, off: number) => string
  /** The store was flushed (its regions released wholesale): forget what was kept for it. */
  flushed?: (store: Store) => void
}

/**
 * The regions the collection types keep beside the segments (types/registry.ts), exported with the
 * store's state under its prefix and adopted with it, so they travel in a live upgrade.
 */
export const typeRegions: {
  exportState?: (store: Store) => { regions: Record<string, ArrayBuffer>, meta: unknown } | null
  /** Bytes of collection blocks in use, counted in used_memory and against maxmemory. */
  used?: (store: Store) => number
} = {}
/** By type number (RecordType); the types' modules register themselves. */
export const typeOps: (TypeOps | undefined)[] = []

export class Store {
  readonly allocator: Allocator
  /** A predecessor's collections heap (regions by unprefixed name, and meta), wrapped on first use by types/registry.ts. */
  adoptedTypes: { regions: Record<string, ArrayBuffer>, meta: unknown } | null = null
  readonly segmentSize: number
  readonly keyHash: KeyHash
  maxmemory: number
  index: KeyIndex
  segments: (Segment | undefined)[] = []
  active: Segment
  liveBytes = 0
  expires = 0
  /** The time used for expiry, refreshed once per batch of commands by the server. */
  now = Date.now()
  /** Keys with a TTL by time, for active expiry (rebuilt by the sweeper after an adopt). */
  readonly expiryQueue = new ExpiryQueue()
  /** Made from a predecessor's regions (its expiry queue must be rebuilt). */
  readonly adopted: boolean
  /** Bytes counted against maxmemory: this store's, or (set by Databases) every database's. */
  usedTotal: () => number = () => this.usedBytes
  /** Set by a successful `find`: where the record is. */
  seg!: Segment
  off = 0
  /** Set by a failed `find`: the hash and the empty slot where the key would go. */
  private hash = 0
  private probe = 0
  private readonly initialSlots: number
  /** The next index's region, prepared ahead of need; not part of the state. */
  private readonly spare: SpareIndex
  /** Set while the index grows (see migration.ts); lookups use `index` until it completes. */
  private migration: IndexMigration | null = null

  constructor (opts: StoreOptions = {}, adopted?: { index: KeyIndex, segments: Segment[], meta: StoreMeta }) {
    this.allocator = opts.allocator ?? heapAllocator
    this.segmentSize = adopted?.meta.segmentSize ?? opts.segmentSize ?? 64 * 1024 * 1024
    this.maxmemory = opts.maxmemory ?? 0
    this.initialSlots = opts.initialSlots ?? 4096
    this.spare = new SpareIndex(this.allocator)
    this.keyHash = adopted !== undefined ? KeyHash.fromMeta(adopted.meta.version, adopted.meta.seed) : KeyHash.random()
    this.adopted = adopted !== undefined
    if (adopted !== undefined) {
      this.index = adopted.index
      for (const s of adopted.segments) this.segments[s.id] = s
      this.active = this.segments[adopted.meta.active] ?? adopted.segments[0]
      this.liveBytes = adopted.meta.liveBytes
      this.expires = adopted.meta.expires
    } else {
      this.index = new KeyIndex(this.allocator.alloc(KeyIndex.bytesFor(this.initialSlots), 'index'), 0)
      this.active = this.newSegment(this.segmentSize)
    }
  }

  /** Wraps regions handed over by a predecessor; `prefix` is its database's prefix of region names. */
  static adopt (state: StoreState, opts: StoreOptions = {}, prefix = ''): Store {
    const { regions, meta } = state
    if (meta?.version !== 1 && meta?.version !== 2) throw new TypeError('kv store meta: unknown version')
    const indexRegion = regions[`${prefix}index`]
    if (indexRegion === undefined) throw new TypeError('kv store: no index region')
    if (!Array.isArray(meta.segments)) throw new TypeError('kv store meta: no segment list')
    const segments = meta.segments.map((m) => {
      const r = regions[`${prefix}seg.${m.id}`]
      if (r === undefined) throw new TypeError(`kv store: segment ${m.id} missing`)
      return new Segment(m.id, r, m.used, m.live)
    })
    const store = new Store(opts, { index: new KeyIndex(indexRegion, meta.count), segments, meta })
    if (meta.types !== undefined) {
      const own: Record<string, ArrayBuffer> = {}
      for (const [name, r] of Object.entries(regions)) if (name.startsWith(`${prefix}types.`)) own[name.slice(prefix.length)] = r
      store.adoptedTypes = { regions: own, meta: meta.types }
    }
    return store
  }

  exportState (prefix = ''): StoreState {
    const regions: Record<string, ArrayBuffer> = { [`${prefix}index`]: this.index.region }
    const segments: SegmentMeta[] = []
    for (const s of this.segments) {
      if (s === undefined) continue
      regions[`${prefix}seg.${s.id}`] = s.region
      segments.push(s.meta())
    }
    const meta: StoreMeta = {
      ...(this.keyHash.legacy ? { version: 1 as const } : { version: 2 as const, seed: [this.keyHash.k0, this.keyHash.k1] as [number, number] }),
      count: this.index.count, expires: this.expires, liveBytes: this.liveBytes,
      active: this.active.id, segmentSize: this.segmentSize, segments
    }
    const types = typeRegions.exportState?.(this) ?? null
    if (types !== null) {
      for (const [name, r] of Object.entries(types.regions)) regions[`${prefix}${name}`] = r
      meta.types = types.meta
    }
    return { regions, meta }
  }

  get size (): number { return this.index.count }

  /** Bytes counted against maxmemory: live records plus the index. */
  get usedBytes (): number { return this.liveBytes + this.index.region.byteLength + (typeRegions.used?.(this) ?? 0) }

  /** Bytes of all regions, garbage included. */
  get allocatedBytes (): number {
    let n = this.index.region.byteLength
    for (const s of this.segments) if (s !== undefined) n += s.region.byteLength
    return n
  }

  /** Finds key `b[s, e)`, dropping it if expired. Returns its slot (and sets seg/off) or -1. */
  find (b: Buffer, s: number, e: number): number {
    const h = this.keyHash.of(b, s, e)
    const t = this.index.t
    const mask = this.index.mask
    let i = h & mask
    for (;;) {
      const w = i << 2
      const sh = t[w]
      if (sh === 0) break
      if (sh === h) {
        const seg = this.segments[t[w + 1]] as Segment
        const off = t[w + 2]
        if (seg.keyEquals(off, b, s, e)) {
          const at = seg.expireAt(off)
          if (at !== 0 && at <= this.now) {
            this.expireSlot(i)
            return this.find(b, s, e)
          }
          this.seg = seg
          this.off = off
          return i
        }
      }
      i = (i + 1) & mask
    }
    this.hash = h
    this.probe = i
    return -1
  }

  /** False if `bytes` more would pass maxmemory. */
  fits (bytes: number): boolean {
    return this.maxmemory === 0 || this.usedTotal() + bytes <= this.maxmemory
  }

  /**
   * Sets key to value. `slot` is the result of the `find` just before (no mutation in between).
   * `expireAt` is ms since the epoch, 0 for none, or KEEP_TTL; `tag` the record's type and encoding
   * (0: a string). Returns false on OOM.
   */
  write (slot: number, kb: Buffer, ks: number, ke: number, vb: Buffer, vs: number, ve: number, expireAt: number, tag = 0): boolean {
    const need = recordSize(ke - ks, ve - vs)
    if (slot >= 0) {
      const seg = this.seg
      const off = this.off
      const old = seg.recSize(off)
      if (need > old && !this.fits(need - old)) return false
      const oldAt = seg.expireAt(off)
      const at = expireAt === KEEP_TTL ? oldAt : expireAt
      if ((oldAt !== 0) !== (at !== 0)) this.expires += at !== 0 ? 1 : -1
      // A write of another type replaces the value; one of the same type is that type's own update.
      const oldType = seg.type(off)
      if (oldType !== 0 && oldType !== (tag & 0xff)) typeOps[oldType]?.drop?.(this, seg, off)
      if (need <= old) {
        seg.rewriteValue(off, vb, vs, ve)
        seg.setTag(off, tag)
        seg.setExpireAt(off, at)
        if (at !== 0 && at !== oldAt) this.expiryQueue.push(at, seg.id, off)
        return true
      }
      const dst = this.room(need)
      const noff = dst.append(kb, ks, ke, vb, vs, ve, at, tag)
      seg.live -= old
      this.liveBytes += need - old
      this.relocate(slot, dst.id, noff)
      return true
    }
    const growing = this.migration === null && this.index.crowded()
    if (!this.fits(growing ? need + 2 * this.index.region.byteLength : need)) return false
    const at = expireAt === KEEP_TTL ? 0 : expireAt
    if (growing) this.startGrowth()
    if (this.index.full()) {
      this.finishGrowth()
      this.find(kb, ks, ke)
    }
    const dst = this.room(need)
    const off = dst.append(kb, ks, ke, vb, vs, ve, at, tag)
    this.index.put(this.probe, this.hash, dst.id, off)
    this.migration?.inserted(this.probe, this.hash, dst.id, off)
    this.liveBytes += need
    if (at !== 0) {
      this.expires++
      this.expiryQueue.push(at, dst.id, off)
    }
    if (storeEvents.hook !== null) storeEvents.hook(this, NEW_KEY, kb, ks, ke)
    if (this.migration !== null) this.growthStep(16)
    return true
  }

  /** Deletes the key in `slot`. */
  removeAt (slot: number): void {
    const w = slot << 2
    const seg = this.segments[this.index.t[w + 1]] as Segment
    const off = this.index.t[w + 2]
    const size = seg.recSize(off)
    if (seg.expireAt(off) !== 0) this.expires--
    const type = seg.type(off)
    if (type !== 0) typeOps[type]?.drop?.(this, seg, off)
    seg.live -= size
    this.liveBytes -= size
    const m = this.migration
    if (m === null) {
      this.index.removeAt(slot)
    } else {
      m.removing(slot)
      this.index.removeAt(slot, (from, to) => m.shifted(from, to))
    }
  }

  /** Deletes the key in `slot`, whose time has passed (telling keyspace notifications, when they are on). */
  expireSlot (slot: number): void {
    const hook = storeEvents.hook
    if (hook !== null && this.at(slot)) {
      const ks = this.seg.keyStart(this.off)
      hook(this, EXPIRED_KEY, this.seg.bytes, ks, ks + this.seg.keyLen(this.off))
    }
    this.removeAt(slot)
  }

  /** Points the entry in `slot` at another record (a rewrite that moved, or compaction). */
  relocate (slot: number, seg: number, off: number): void {
    const w = slot << 2
    const t = this.index.t
    this.migration?.relocated(slot, t[w], t[w + 1], t[w + 2], seg, off)
    t[w + 1] = seg
    t[w + 2] = off
    // The queue names records by place: a moved record with a TTL needs an entry at its new place.
    const at = (this.segments[seg] as Segment).expireAt(off)
    if (at !== 0) this.expiryQueue.push(at, seg, off)
  }

  /** Sets or clears (0) the expiry of the key found last. */
  setExpire (at: number): void {
    const old = this.seg.expireAt(this.off)
    if ((old !== 0) !== (at !== 0)) this.expires += at !== 0 ? 1 : -1
    this.seg.setExpireAt(this.off, at)
    if (at !== 0 && at !== old) this.expiryQueue.push(at, this.seg.id, this.off)
  }

  /** The type (RecordType) of the key found last. */
  typeOf (): number {
    return this.seg.type(this.off)
  }

  /**
   * The slot whose entry points at the record at segment `segId`, offset `off`, or -1: a check that a
   * place remembered earlier (by the expiry queue) still holds a live record. Bounds are checked
   * before anything is read, because the place may since hold garbage or another segment.
   */
  slotOf (segId: number, off: number): number {
    const seg = this.segments[segId]
    if (seg === undefined || (off & 7) !== 0 || off + HEADER > seg.used) return -1
    const klen = seg.keyLen(off)
    if (off + HEADER + klen > seg.used) return -1
    const h = this.keyHash.of(seg.bytes, off + HEADER, off + HEADER + klen)
    const { t, mask } = this.index
    for (let i = h & mask; t[i << 2] !== 0; i = (i + 1) & mask) {
      const w = i << 2
      if (t[w] === h && t[w + 1] === segId && t[w + 2] === off) return i
    }
    return -1
  }

  /** Points seg/off at the record in `slot`; false if the slot is empty. */
  at (slot: number): boolean {
    const w = slot << 2
    if (this.index.t[w] === 0) return false
    this.seg = this.segments[this.index.t[w + 1]] as Segment
    this.off = this.index.t[w + 2]
    return true
  }

  flush (): void {
    const oldIndex = this.index.region
    const old = this.segments
    this.segments = []
    this.index = new KeyIndex(this.allocator.alloc(KeyIndex.bytesFor(this.initialSlots), 'index'), 0)
    this.active = this.newSegment(this.segmentSize)
    this.liveBytes = 0
    this.expires = 0
    this.expiryQueue.clear()
    this.allocator.release(oldIndex)
    this.spare.release()
    if (this.migration !== null) this.allocator.release(this.migration.to.region)
    this.migration = null
    for (const s of old) if (s !== undefined) this.allocator.release(s.region)
    for (const ops of typeOps) ops?.flushed?.(this)
  }

  /** Gives back every region (FLUSHALL of a database other than 0): the store is not used again. */
  release (): void {
    this.flush()
    this.allocator.release(this.index.region)
    this.allocator.release(this.active.region)
    this.segments = []
  }

  /** A segment with room for `bytes`: the active one, or a new active one. */
  room (bytes: number): Segment {
    if (this.active.fits(bytes)) return this.active
    this.active = this.newSegment(Math.max(this.segmentSize, bytes))
    return this.active
  }

  /** Frees a segment that compaction emptied. */
  dropSegment (seg: Segment): void {
    if (seg === this.active || seg.live !== 0) throw new Error(`kv store: segment ${seg.id} is still in use`)
    this.segments[seg.id] = undefined
    this.allocator.release(seg.region)
  }

  private newSegment (bytes: number): Segment {
    let id = this.segments.indexOf(undefined)
    if (id < 0) id = this.segments.length
    const seg = new Segment(id, this.allocator.alloc(bytes, `seg.${id}`))
    this.segments[id] = seg
    return seg
  }

  /** Background work before the index fills up: prepare the next index's region, a slice per call. */
  prepareGrowth (maxPages: number): boolean {
    if (this.migration !== null || this.index.count < this.index.capacity * 0.5) return false
    return this.spare.prepare(KeyIndex.bytesFor(this.index.capacity * 2), maxPages)
  }

  /** Copies up to `slots` index slots into the growing index; switches over when all are copied. */
  growthStep (slots: number): boolean {
    const m = this.migration
    if (m === null || !m.step(slots)) return m !== null
    this.migration = null
    const old = this.index
    this.index = m.to
    this.allocator.release(old.region)
    return false
  }

  private startGrowth (): void {
    const region = this.spare.take(KeyIndex.bytesFor(this.index.capacity * 2))
    this.migration = new IndexMigration(this.index, new KeyIndex(region, 0))
  }

  /** When inserts outran the background copy: finish it now. */
  private finishGrowth (): void {
    if (this.migration === null) this.startGrowth()
    this.growthStep(Number.MAX_SAFE_INTEGER)
  }
}
