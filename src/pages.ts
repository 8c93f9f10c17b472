/**
 * Giftable memory: ArrayBuffers backed by sealed memfd pages. Each one is an ordered list of
 * extents (memfd, offset, length), whole pages each, mapped MAP_SHARED at one address.
 */
import { markAsUntransferable } from 'node:worker_threads'
import { PagegiftError, SystemError, check } from './errors.ts'
import { AsyncOp, errno, F_SEAL_SHRINK, native, type MappingHandle } from './native.ts'
import { testFlag } from './testhook.ts'

/** The system page size in bytes. */
export const pageSize: number = native.pageSize()

/** A memfd shared by the extents that map it; closed when the last one lets go. */
export class Memfd {
  readonly fd: number
  #refs = 1
  /** Set once the fd has left the process (fdOf): its pages may then be mapped elsewhere too. */
  exported = false
  constructor (fd: number) { this.fd = fd }
  /** The extents, offers and pool entries that hold it. */
  get refs (): number { return this.#refs }
  ref (): this { this.#refs++; return this }
  unref (): void {
    if (--this.#refs === 0) native.close(this.fd)
  }
}

export interface Extent { memfd: Memfd, offset: number, length: number }

/** The bookkeeping of one giftable ArrayBuffer. */
export interface Region {
  ab: ArrayBuffer
  handle: MappingHandle
  mapLength: number
  byteLength: number
  /** Boxed so that the finalizer sees extents replaced by moveInto(). */
  pages: { extents: Extent[] }
  released: boolean
  /** Detached by a gift that has not settled: the gift owns the pages now, not the user. */
  gifted: boolean
  /** Receives writing into this buffer now: it may not be released until they settle. */
  busy: number
  /** Set by allocReceive(): the memfd made for this receive target, whose pages may go back to the pool. */
  recycle?: Memfd
}

const regions = new WeakMap<ArrayBuffer, Region>()
/** Closes the memfds of a giftable buffer that was collected without release(). */
const collected = new FinalizationRegistry<{ extents: Extent[] }>((pages) => { for (const e of pages.extents) e.memfd.unref() })

export const roundUp = (n: number): number => Math.ceil(n / pageSize) * pageSize
export const isAligned = (n: number): boolean => n % pageSize === 0
const MAX_BYTES = 2 ** 46

function checkLength (name: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new TypeError(`The "${name}" argument must be an integer. Received ${typeof n === 'number' ? n : typeof n}`)
  if (n <= 0 || n > MAX_BYTES) throw new RangeError(`The "${name}" argument must be > 0 and <= 2**46. Received ${n}`)
  return n
}

/**
 * Maps extents (whole pages, in order) at one address and registers the result as giftable. A
 * `slot` mapping starts on a page-table boundary and covers whole page tables, so that the receive
 * pool can move it to a new address with its page tables (native handover) and keep it warm.
 */
export function mapExtents (extents: Extent[], byteLength: number, slot = false): ArrayBuffer {
  const mapLength = extents.reduce((sum, e) => sum + e.length, 0)
  const first = extents[0]
  const mapped = native.map(first.memfd.fd, first.offset, mapLength, byteLength, slot)
  if (typeof mapped === 'number') throw new SystemError(mapped, 'mmap')
  const [ab, handle] = mapped
  let at = first.length
  for (const e of extents.slice(1)) {
    const r = native.mapFixed(handle, at, e.memfd.fd, e.offset, e.length)
    if (r < 0) {
      native.detach(ab)
      native.unmapAsync(handle)
      throw new SystemError(r, 'mmap')
    }
    at += e.length
  }
  register(ab, handle, mapLength, byteLength, extents)
  return ab
}

/** Records a new mapping's ArrayBuffer as giftable; its extents each take a reference on their memfd. */
function register (ab: ArrayBuffer, handle: MappingHandle, mapLength: number, byteLength: number, extents: Extent[]): Region {
  // The mapping belongs to this one ArrayBuffer: a transfer (postMessage, structuredClone) would hand
  // the same memory to a new object that release() or the finalizer here then unmaps under it.
  // Marked untransferable, the buffer is copied instead (Node 20; newer Nodes throw).
  markAsUntransferable(ab)
  for (const e of extents) e.memfd.ref()
  const region: Region = { ab, handle, mapLength, byteLength, pages: { extents: extents.map((e) => ({ ...e })) }, released: false, gifted: false, busy: 0 }
  regions.set(ab, region)
  collected.register(ab, region.pages, region)
  return region
}

/**
 * Allocates `byteLength` bytes of giftable memory: a memfd sized to whole pages, sealed against
 * shrinking and growing (so no process that maps it can take a SIGBUS), mapped MAP_SHARED.
 */
export function alloc (byteLength: number, opts: { name?: string } = {}): ArrayBuffer {
  checkLength('byteLength', byteLength)
  if (opts === null || typeof opts !== 'object') throw new TypeError('The "opts" argument must be an object')
  const name = opts.name ?? 'pagegift'
  if (typeof name !== 'string' || name.length > 200) throw new TypeError('The "opts.name" argument must be a string of at most 200 characters')
  return mapNewMemfd(name, byteLength)
}

function mapNewMemfd (name: string, byteLength: number, slot = false): ArrayBuffer {
  const size = roundUp(byteLength)
  // Test-only (PAGEGIFT_TEST_HOOKS=alloc:unsealed=on): unsealed pages, to show that receivers refuse them.
  const seal = testFlag('alloc:unsealed') === undefined
  const memfd = new Memfd(check(native.memfdCreate(name, size, seal), 'memfd_create'))
  try {
    return mapExtents([{ memfd, offset: 0, length: size }], byteLength, slot)
  } finally {
    memfd.unref()
  }
}

/** One populate job's share: about 10 ms of one threadpool thread, so a stop is never far off. */
const POPULATE_CHUNK = 64 << 20

/**
 * Maps the page tables of a giftable buffer's pages on the threadpool, so that its first reads and
 * writes take no page fault: a successor that maps a big region touches its pages at random while
 * it serves, and each first touch would cost a fault. Holes stay holes. One job of at most 64 MiB at
 * a time, and none once `stop()` says so (the threadpool stays free for a pause's own jobs).
 * Resolves to the bytes populated: fewer if stopped or released meanwhile, 0 for memory that is not
 * giftable or a kernel without MADV_POPULATE_READ (before 5.14). Other failures reject (SystemError).
 */
export async function populate (ab: ArrayBuffer, stop: () => boolean = () => false): Promise<number> {
  const region = regions.get(ab)
  let done = 0
  for (let at = 0; region !== undefined && at < region.mapLength && !region.released && !stop(); at += POPULATE_CHUNK) {
    let r: number
    try {
      r = await native.async(AsyncOp.Populate, 0, 0, [region.handle, at, Math.min(POPULATE_CHUNK, region.mapLength - at)], null)
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_PAGEGIFT_RELEASED') break // released between two jobs
      throw err
    }
    if (r === errno.EINVAL) break // no MADV_POPULATE_READ here (chunks are page-aligned)
    if (r < 0) throw new SystemError(r, 'madvise')
    done += r
  }
  return done
}

/** The region behind a live giftable ArrayBuffer, or undefined. */
export function regionOf (ab: ArrayBufferLike): Region | undefined {
  const r = regions.get(ab as ArrayBuffer)
  return r !== undefined && !r.released && r.ab.byteLength !== 0 ? r : undefined
}

/** True when `x` (or the ArrayBuffer behind a view) is giftable memory that is still mapped. */
export function isGiftable (x: ArrayBuffer | ArrayBufferView): boolean {
  if (x instanceof ArrayBuffer) return regionOf(x) !== undefined
  if (ArrayBuffer.isView(x)) return regionOf(x.buffer) !== undefined
  return false
}

function regionArg (buf: unknown, name: string): Region {
  if (!(buf instanceof ArrayBuffer)) throw new TypeError(`The "${name}" argument must be an ArrayBuffer returned by alloc()`)
  const region = regions.get(buf)
  if (region === undefined) throw new PagegiftError('ERR_PAGEGIFT_NOT_GIFTABLE', `The "${name}" argument is not giftable memory (use alloc())`)
  if (region.released || region.gifted) throw new PagegiftError('ERR_PAGEGIFT_RELEASED', `The "${name}" argument was already released or gifted`)
  return region
}

/** Forgets a region: its ArrayBuffer is detached now, its pages unmapped on the threadpool. */
export function dropRegion (region: Region, keepExtents = false): Extent[] {
  if (region.released) return []
  region.released = true
  collected.unregister(region)
  if (region.ab.byteLength !== 0) native.detach(region.ab)
  native.unmapAsync(region.handle)
  if (!keepExtents) for (const e of region.pages.extents) e.memfd.unref()
  return region.pages.extents
}

/**
 * Unmaps a giftable buffer now. It becomes detached: every view of it reads as length 0. A buffer
 * that receive() allocated may instead keep its pages mapped in the receive pool, for the next
 * receive of that size (see allocReceive); no JavaScript object reaches them meanwhile.
 */
export function release (buf: ArrayBuffer): void {
  const region = regionArg(buf, 'buf')
  if (region.busy > 0) throw new PagegiftError('ERR_PAGEGIFT_BUSY', 'The "buf" argument is the target of a receive that has not settled; release it after receive() settles')
  if (!toPool(region)) dropRegion(region)
}

/*
 * The receive pool. A receive without `into` needs new memory for every gift that is copied (cma,
 * splice, copy), and on this VM the first write to a new page costs far more than the copy into
 * it: a fresh memfd takes 1.3 ms per MiB to touch, memcpy into written memory 0.1 ms. So the pages
 * of a receive target that the user releases stay mapped here, keyed by their page-rounded size,
 * and the next receive of that size writes into them: no page fault, no new page. They move to a
 * new address as they enter (native handover): the old one is unmapped, as release() leaves it, so
 * I/O still pending on the released buffer fails instead of reading the next gift.
 *
 * The move must keep them warm. On this VM (a shadow-paging hypervisor) a page whose page-table
 * entry was rewritten traps on its first touch, resident or not, so pages moved entry by entry cost
 * as much as new ones (1 MiB: 2.6 ms to write once, against 0.09 ms). So a target the pool may take
 * is mapped in a slot (mapExtents `slot`): alone in whole 2 MiB page tables, which the move carries
 * over whole, each by one upper-level entry.
 *
 * Only pages that never left this process come back: a target that allocReceive() made, still one
 * extent of its own memfd, never exported (fdOf, a handoff), held by nothing else (an offer, a move
 * into it) and used by no job. A buffer the garbage collector takes is unmapped as before. Entries
 * unused for POOL_IDLE_MS are unmapped; PAGEGIFT_RECEIVE_POOL_MB bounds the pool (default 64, 0 off),
 * and it holds at most POOL_MAX_ENTRIES targets of POOL_MIN_BYTES or more. A release that does not
 * fit unmaps the oldest entries to make room.
 */
interface Pooled { memfd: Memfd, handle: MappingHandle, since: number }
const pool = new Map<number, Pooled[]>()
let pooledBytes = 0
let poolEntries = 0
let poolTimer: NodeJS.Timeout | undefined
let poolMax: number | undefined
const POOL_IDLE_MS = 1000
const POOL_DEFAULT_MB = 64
/** Each entry holds a memfd: at most this many, so the pool never costs many fds. */
const POOL_MAX_ENTRIES = 64
/** Smaller targets are not worth an fd held: few pages to fault in (small gifts go inline anyway). */
const POOL_MIN_BYTES = 64 * 1024

function poolLimit (): number {
  if (poolMax === undefined) {
    const raw = process.env.PAGEGIFT_RECEIVE_POOL_MB
    const mb = raw === undefined || raw.trim() === '' ? POOL_DEFAULT_MB : Number(raw)
    poolMax = Number.isFinite(mb) && mb >= 0 ? Math.floor(mb * 1024 * 1024) : POOL_DEFAULT_MB * 1024 * 1024
  }
  return poolMax
}

/** True for a page-rounded size the pool takes: a target of it is mapped in a slot, and may come back. */
function poolable (size: number): boolean {
  return size >= POOL_MIN_BYTES && size <= poolLimit()
}

/** Puts a released receive target's pages in the pool; false when they may not go there. */
function toPool (region: Region): boolean {
  const memfd = region.recycle
  if (memfd === undefined || region.pages.extents.length !== 1) return false
  const [e] = region.pages.extents
  if (e.memfd !== memfd || e.offset !== 0 || e.length !== region.mapLength || memfd.exported || memfd.refs !== 1) return false
  if (!poolable(region.mapLength)) return false
  // Detached first: from here on no JavaScript object reaches the pages until wrap() makes a new one.
  if (region.ab.byteLength !== 0) native.detach(region.ab)
  const handle = native.handover(region.handle)
  if (typeof handle === 'number') return false // a job still uses the pages: dropRegion() unmaps them once it ends
  region.released = true
  collected.unregister(region)
  // The latest release is the likeliest to be received again: the oldest entries make room for it.
  while (pool.size > 0 && (poolEntries >= POOL_MAX_ENTRIES || pooledBytes + region.mapLength > poolLimit())) evictOldest()
  const list = pool.get(region.mapLength) ?? []
  list.push({ memfd, handle, since: performance.now() })
  pool.set(region.mapLength, list)
  pooledBytes += region.mapLength
  poolEntries++
  poolTimer ??= setTimeout(expirePool, POOL_IDLE_MS).unref()
  return true
}

function freePooled (p: Pooled): void {
  native.unmapAsync(p.handle)
  p.memfd.unref()
}

/** Counts `n` entries of `size` bytes out of the pool, once they are off its `list`. */
function unlisted (size: number, list: Pooled[], n: number): void {
  pooledBytes -= n * size
  poolEntries -= n
  if (list.length === 0) pool.delete(size)
}

/** Unmaps the entry that has waited longest (each size's list is oldest first). */
function evictOldest (): void {
  let oldest: [number, Pooled[]] | undefined
  for (const entry of pool) if (oldest === undefined || entry[1][0].since < oldest[1][0].since) oldest = entry
  if (oldest === undefined) return
  const [size, list] = oldest
  freePooled(list.shift() as Pooled)
  unlisted(size, list, 1)
}

function expirePool (): void {
  poolTimer = undefined
  const cutoff = performance.now() - POOL_IDLE_MS
  for (const [size, list] of pool) {
    // Taken from the end, so the oldest entries are at the start.
    const stale = list.findIndex((p) => p.since > cutoff)
    const n = stale < 0 ? list.length : stale
    for (const p of list.splice(0, n)) freePooled(p)
    unlisted(size, list, n)
  }
  if (pool.size > 0) poolTimer = setTimeout(expirePool, POOL_IDLE_MS).unref()
}

/** Unmaps every page the receive pool holds (they are unmapped by themselves after a second unused); returns the bytes freed. */
export function trimReceivePool (): number {
  const freed = pooledBytes
  for (const list of pool.values()) for (const p of list) freePooled(p)
  pool.clear()
  pooledBytes = 0
  poolEntries = 0
  if (poolTimer !== undefined) clearTimeout(poolTimer)
  poolTimer = undefined
  return freed
}

/** New giftable memory for a receive target: pooled pages of this size when there are some, else alloc(). */
export function allocReceive (byteLength: number): ArrayBuffer {
  const size = roundUp(byteLength)
  const list = pool.get(size)
  const p = list?.pop()
  if (list !== undefined && p !== undefined) {
    unlisted(size, list, 1)
    let ab: ArrayBuffer | number
    try {
      ab = native.wrap(p.handle, byteLength)
    } catch (err) {
      freePooled(p)
      throw err
    }
    if (typeof ab !== 'number') {
      const region = register(ab, p.handle, size, byteLength, [{ memfd: p.memfd, offset: 0, length: size }])
      p.memfd.unref() // the pool's reference; the region took its own
      region.recycle = p.memfd
      return ab
    }
    freePooled(p)
  }
  // A target the pool could take back gets a slot, so that its pages move to the pool warm.
  const ab = mapNewMemfd('pagegift', byteLength, poolable(size))
  const region = regions.get(ab) as Region
  region.recycle = region.pages.extents[0].memfd
  return ab
}

/**
 * Returns a new fd (close-on-exec) for the memfd behind a giftable buffer, to hand to another
 * program (for example QEMU as `mem-path=/proc/self/fd/N`). The caller closes it.
 */
export function fdOf (buf: ArrayBuffer): number {
  const region = regionArg(buf, 'buf')
  const extents = region.pages.extents
  if (extents.length !== 1 || extents[0].offset !== 0) {
    throw new PagegiftError('ERR_PAGEGIFT_FRAGMENTED', 'This buffer is made of several memfds (pages were moved into it), so no single fd describes it')
  }
  const memfd = extents[0].memfd
  memfd.exported = true
  return check(native.dup(memfd.fd), 'dup')
}

/** The extents covering [offset, offset + length) of a region; offset and length are page aligned. */
export function extentsOf (region: Region, offset: number, length: number): Extent[] {
  const out: Extent[] = []
  let pos = 0
  for (const e of region.pages.extents) {
    const start = Math.max(offset, pos)
    const end = Math.min(offset + length, pos + e.length)
    if (start < end) out.push({ memfd: e.memfd, offset: e.offset + (start - pos), length: end - start })
    pos += e.length
  }
  return out
}

export interface PageMove { region: Region, at: number, extent: Extent }

/**
 * Maps each move's extent over [at, at + length) of its region (the RFC's page move), all or
 * nothing. When a MAP_FIXED fails, every range already replaced gets its old pages back, so the
 * reader keeps none of the writer's pages; a region whose old pages cannot be mapped back (the
 * kernel may leave a failed range unmapped) is released, detached, so that no view reaches a hole.
 * Then the mmap error is thrown.
 */
export function moveInto (moves: PageMove[]): void {
  for (let i = 0; i < moves.length; i++) {
    const { region, at, extent } = moves[i]
    const r = native.mapFixed(region.handle, at, extent.memfd.fd, extent.offset, extent.length)
    if (r < 0) {
      restore(moves.slice(0, i + 1))
      throw new SystemError(r, 'mmap')
    }
  }
  for (const m of moves) adopt(m)
}

function restore (moves: PageMove[]): void {
  for (const { region, at, extent } of moves) {
    if (region.released) continue
    let pos = at
    for (const old of extentsOf(region, at, extent.length)) {
      if (native.mapFixed(region.handle, pos, old.memfd.fd, old.offset, old.length) < 0) {
        dropRegion(region)
        break
      }
      pos += old.length
    }
  }
}

/** Records a move that is mapped: the region's extents now name the new pages. */
function adopt ({ region, at, extent }: PageMove): void {
  const end = at + extent.length
  const next: Extent[] = []
  let pos = 0
  let placed = false
  for (const e of region.pages.extents) {
    const eEnd = pos + e.length
    if (eEnd <= at || pos >= end) {
      next.push(e)
    } else {
      if (pos < at) next.push({ memfd: e.memfd.ref(), offset: e.offset, length: at - pos })
      if (!placed) next.push({ memfd: extent.memfd.ref(), offset: extent.offset, length: extent.length })
      placed = true
      if (eEnd > end) next.push({ memfd: e.memfd.ref(), offset: e.offset + (end - pos), length: eEnd - end })
      // The old pages under the moved range are unreachable now: free them, unless another program maps them.
      const from = Math.max(pos, at)
      if (!e.memfd.exported) native.punchHole(e.memfd.fd, e.offset + (from - pos), Math.min(eEnd, end) - from)
      e.memfd.unref()
    }
    pos = eEnd
  }
  region.pages.extents = next
}

/** True when a received memfd may be mapped: sealed against shrinking, and large enough. */
export function mappable (fd: number, offset: number, length: number): string | undefined {
  const seals = native.getSeals(fd)
  if (seals < 0) return `not a sealable memfd (${new SystemError(seals, 'fcntl').code})`
  if ((seals & F_SEAL_SHRINK) === 0) return 'memfd lacks F_SEAL_SHRINK'
  const size = native.fdSize(fd)
  if (size < offset + length) return 'memfd smaller than the extent'
  return undefined
}
