/**
 * Redis's numbered databases: one Store each, made when first used (an unused one costs nothing,
 * and has no regions to hand over). Each store has its own expiry and compaction; maxmemory counts
 * them all.
 *
 * Region names: database 0 keeps the names a single-database store had (`index`, `seg.N`), so the
 * previous release's layout is database 0 of this one; database i > 0 prefixes them with `db<i>.`.
 * The `index` region carries the layout version (LAYOUT), which the handoff checks before anything
 * pauses: this build reads layout 0 (the previous release, which declared none: one database, every
 * record a string, its tag word 0) and its own.
 */
import { Compactor } from './compactor.ts'
import { ExpirySweeper } from './expiry.ts'
import { Store, type StoreMeta, type StoreOptions } from './store.ts'

/** The store's region layout: 2 = type tags and databases. 0 = the previous release's (undeclared). */
export const LAYOUT = 2
/** The layouts of the `index` region this build reads; every other region follows its database's index. */
export const LAYOUTS = { index: { version: LAYOUT, accepts: [0, LAYOUT] } }

export const DEFAULT_DATABASES = 16

/** What a successor needs besides the regions. */
export interface DatabasesMeta {
  layout: number
  count: number
  /** By database number; absent ones were never used. */
  stores: Record<string, StoreMeta>
}

export class Databases {
  private readonly stores: (Store | undefined)[]
  private readonly compactors: (Compactor | undefined)[] = []
  private readonly sweepers: (ExpirySweeper | undefined)[] = []
  private now = Date.now()

  constructor (readonly count: number, private readonly opts: StoreOptions, first?: Store) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`databases must be a positive integer, not ${count}`)
    this.stores = new Array(count).fill(undefined)
    this.install(0, first ?? new Store(opts))
  }

  /** Database i (0 <= i < count), made if it never was. */
  db (i: number): Store {
    return this.stores[i] ?? this.install(i, new Store(this.opts))
  }

  /** Database i if it exists. */
  peek (i: number): Store | undefined {
    return this.stores[i]
  }

  /** The databases made so far, with their numbers. */
  * used (): Generator<[number, Store]> {
    for (let i = 0; i < this.count; i++) {
      const s = this.stores[i]
      if (s !== undefined) yield [i, s]
    }
  }

  get maxmemory (): number { return this.db(0).maxmemory }
  set maxmemory (n: number) {
    this.opts.maxmemory = n
    for (const [, s] of this.used()) s.maxmemory = n
  }

  /** Bytes counted against maxmemory, over every database. */
  usedBytes (): number {
    let n = 0
    for (const s of this.stores) if (s !== undefined) n += s.usedBytes
    return n
  }

  setNow (t: number): void {
    this.now = t
    for (const s of this.stores) if (s !== undefined) s.now = t
  }

  /** SWAPDB: clients see the other data at once (the stores swap places; their numbers do not travel in them). */
  swap (a: number, b: number): void {
    const sa = this.db(a)
    const sb = this.db(b)
    this.stores[a] = sb; this.stores[b] = sa
    const ca = this.compactors[a]; this.compactors[a] = this.compactors[b]; this.compactors[b] = ca
    const wa = this.sweepers[a]; this.sweepers[a] = this.sweepers[b]; this.sweepers[b] = wa
  }

  /** Empties database 0 and gives back every other one's regions: an unused database costs nothing. */
  flushAll (): void {
    this.stores[0]?.flush()
    for (let i = 1; i < this.count; i++) {
      this.stores[i]?.release()
      this.stores[i] = undefined
      this.compactors[i] = undefined
      this.sweepers[i] = undefined
    }
  }

  /** Keys deleted by active expiry, over every database. */
  get expired (): number {
    return this.sweepers.reduce((n, w) => n + (w?.expired ?? 0), 0)
  }

  get compacted (): { movedBytes: number, freedSegments: number } {
    let movedBytes = 0
    let freedSegments = 0
    for (const c of this.compactors) { movedBytes += c?.movedBytes ?? 0; freedSegments += c?.freedSegments ?? 0 }
    return { movedBytes, freedSegments }
  }

  /** Background work for every database: expiry first (due keys, then a slice of the sweep), growth, compaction. */
  housekeeping (now: number): void {
    this.setNow(now)
    for (let i = 0; i < this.count; i++) {
      const s = this.stores[i]
      if (s === undefined) continue
      const w = this.sweepers[i] as ExpirySweeper
      w.expireDue(2000)
      w.sweep(1024)
      s.prepareGrowth(256)
      s.growthStep(65536)
      ;(this.compactors[i] as Compactor).step(2)
    }
  }

  exportState (): { regions: Record<string, ArrayBuffer>, meta: DatabasesMeta } {
    const regions: Record<string, ArrayBuffer> = {}
    const stores: Record<string, StoreMeta> = {}
    for (const [i, s] of this.used()) {
      const st = s.exportState(prefix(i))
      Object.assign(regions, st.regions)
      stores[i] = st.meta
    }
    return { regions, meta: { layout: LAYOUT, count: this.count, stores } }
  }

  /**
   * Wraps a predecessor's regions: `meta` is this layout's DatabasesMeta, or (`legacy`) the previous
   * release's one StoreMeta, which becomes database 0. Anything else is refused, never guessed at.
   */
  static adopt (regions: Record<string, ArrayBuffer>, meta: { dbs?: unknown, legacy?: unknown }, count: number, opts: StoreOptions): Databases {
    if (meta.dbs === undefined) {
      if (typeof meta.legacy !== 'object' || meta.legacy === null) throw layoutError('no store in the predecessor\'s meta')
      return new Databases(count, opts, adoptOne(regions, meta.legacy as StoreMeta, opts, 0))
    }
    const m = meta.dbs as Partial<DatabasesMeta> | null
    if (m === null || typeof m !== 'object') throw layoutError('the predecessor\'s database list is not an object')
    if (m.layout !== LAYOUT) throw layoutError(`the predecessor's store layout is ${String(m.layout)}, and this release reads layouts 0 and ${LAYOUT}`)
    if (typeof m.stores !== 'object' || m.stores === null) throw layoutError('the predecessor\'s database list has no stores')
    const numbers = Object.keys(m.stores).map(Number)
    const highest = Math.max(0, ...numbers)
    if (!numbers.every((n) => Number.isInteger(n) && n >= 0)) throw layoutError('a database number is not a number')
    // Databases never shrink in an upgrade: a successor started with fewer keeps as many as there are data for.
    const dbs = new Databases(Math.max(count, highest + 1), opts, adoptOne(regions, m.stores[0], opts, 0))
    for (const n of numbers) if (n !== 0) dbs.install(n, adoptOne(regions, m.stores[n], opts, n))
    return dbs
  }

  private install (i: number, s: Store): Store {
    this.stores[i] = s
    s.now = this.now
    s.usedTotal = () => this.usedBytes()
    this.compactors[i] = new Compactor(s)
    this.sweepers[i] = new ExpirySweeper(s, s.adopted)
    return s
  }
}

function prefix (i: number): string {
  return i === 0 ? '' : `db${i}.`
}

function adoptOne (regions: Record<string, ArrayBuffer>, meta: StoreMeta | undefined, opts: StoreOptions, i: number): Store {
  if (meta === undefined) return new Store(opts)
  const s = Store.adopt({ regions, meta }, opts, prefix(i))
  return s
}

function layoutError (why: string): Error {
  return Object.assign(new TypeError(`pagegift-kv: cannot adopt the predecessor's store: ${why}`), { code: 'ERR_PAGEGIFT_KV_LAYOUT' })
}
