/**
 * The collections' heap: a size-class allocator over a few giftable arenas. Hashes, lists, sets and
 * sorted sets keep their tables, nodes and entries here as blocks addressed by a u32 ref, so a live
 * upgrade maps the same arenas and the successor adopts them in O(1): the free lists are threaded
 * through the free blocks themselves, and the rest (list heads, bump pointers) is a small meta.
 *
 * A ref is (arena << 23) | (offset / 8): arenas are at most 64 MiB, blocks are 8-byte aligned, and
 * ref 0 is never a block (every arena starts its bump pointer at 8). Blocks carry no header: whoever
 * frees one says its size, as jemalloc's sized free does, so a 20-byte set member costs 24 bytes.
 */
import type { Allocator } from '../segments.ts'

export const ARENA_MAX = 64 * 1024 * 1024
const FIRST_ARENA = 1024 * 1024
const MAX_ARENAS = 512
export const OFF_MASK = 0x7fffff

/** Size classes: 8-byte steps to 128, then four per doubling (like jemalloc's), up to ARENA_MAX. */
const CLASS_SIZES: number[] = []
for (let s = 8; s <= 128; s += 8) CLASS_SIZES.push(s)
for (let base = 128; base < ARENA_MAX; base *= 2) for (let k = 1; k <= 4; k++) CLASS_SIZES.push(base + (base / 4) * k)

/** The class index for `bytes` (> 0). */
export function classOf (bytes: number): number {
  if (bytes <= 128) return ((bytes + 7) >>> 3) - 1
  const lg = 31 - Math.clz32(bytes - 1) // bytes in (2^lg, 2^(lg+1)]
  const quarter = 2 ** (lg - 2)
  const k = Math.ceil((bytes - 2 ** lg) / quarter) // 1..4
  return 16 + (lg - 7) * 4 + k - 1
}

/** The bytes a block of `bytes` really takes. */
export function blockSize (bytes: number): number { return CLASS_SIZES[classOf(bytes)] }

export interface HeapMeta { arenas: number[], top: number, free: number[], used: number }

export class TypeHeap {
  /** Per arena: its bytes and word views (index = arena number). */
  readonly b: Buffer[] = []
  readonly u32: Uint32Array[] = []
  readonly f64: Float64Array[] = []
  /** Each arena as a DataView too: four-byte compares of members (bytes.ts compareAt). */
  readonly dv: DataView[] = []
  readonly regions: ArrayBuffer[] = []
  /** Free list head per class (0 = empty). */
  private free: number[]
  /** Bump pointer in the last arena. */
  private top = 0
  /** Bytes in blocks handed out (class sizes), for INFO and maxmemory. */
  used = 0

  constructor (private readonly allocator: Allocator, adopted?: { regions: ArrayBuffer[], meta: HeapMeta }) {
    this.free = new Array<number>(CLASS_SIZES.length).fill(0)
    if (adopted === undefined) return
    const m = adopted.meta
    if (!Array.isArray(m.free) || m.free.length !== CLASS_SIZES.length) throw new TypeError('kv types heap meta: bad free lists')
    adopted.regions.forEach((r) => this.wrap(r))
    this.free = m.free.slice()
    this.top = m.top
    this.used = m.used
  }

  get arenaBytes (): number { return this.regions.reduce((n, r) => n + r.byteLength, 0) }

  meta (): HeapMeta {
    return { arenas: this.regions.map((r) => r.byteLength), top: this.top, free: this.free.slice(), used: this.used }
  }

  /** A block of at least `bytes`; throws a RangeError if it cannot be had. */
  alloc (bytes: number): number {
    if (bytes > ARENA_MAX - 8) throw new RangeError('kv: collection block too large')
    const c = classOf(bytes)
    const size = CLASS_SIZES[c]
    this.used += size
    const head = this.free[c]
    if (head !== 0) {
      this.free[c] = this.u32[head >>> 23][(head & OFF_MASK) << 1]
      return head
    }
    let a = this.regions.length - 1
    if (a < 0 || this.top + size > this.regions[a].byteLength) {
      a = this.grow(size)
    }
    const off = this.top
    this.top += size
    return (a << 23) | (off >>> 3)
  }

  /** Gives back a block allocated with `bytes` (the same number passed to alloc). */
  release (ref: number, bytes: number): void {
    const c = classOf(bytes)
    this.used -= CLASS_SIZES[c]
    this.u32[ref >>> 23][(ref & OFF_MASK) << 1] = this.free[c]
    this.free[c] = ref
  }

  /** True if `ref` names a place inside an arena (a check before trusting a ref read from a record). */
  valid (ref: number): boolean {
    const a = ref >>> 23
    return ref !== 0 && a < this.regions.length && ((ref & OFF_MASK) << 3) + 8 <= this.b[a].length
  }

  /** Releases every arena (FLUSHDB). */
  clear (): void {
    for (const r of this.regions) this.allocator.release(r)
    this.regions.length = 0
    this.b.length = 0
    this.u32.length = 0
    this.f64.length = 0
    this.dv.length = 0
    this.free.fill(0)
    this.top = 0
    this.used = 0
  }

  private grow (size: number): number {
    if (this.regions.length >= MAX_ARENAS) throw new RangeError('kv: collections heap is full')
    const want = Math.min(ARENA_MAX, FIRST_ARENA * 2 ** this.regions.length)
    const bytes = Math.max(want, size + 8)
    this.wrap(this.allocator.alloc(bytes, `types.${this.regions.length}`))
    this.top = 8
    return this.regions.length - 1
  }

  private wrap (r: ArrayBuffer): void {
    const n = r.byteLength & ~7
    this.regions.push(r)
    this.b.push(Buffer.from(r, 0, n))
    this.u32.push(new Uint32Array(r, 0, n >>> 2))
    this.f64.push(new Float64Array(r, 0, n >>> 3))
    this.dv.push(new DataView(r, 0, n))
  }
}

/** Byte offset of a ref inside its arena. */
export function offOf (ref: number): number { return (ref & OFF_MASK) << 3 }
/** Arena number of a ref. */
export function arenaOf (ref: number): number { return ref >>> 23 }
