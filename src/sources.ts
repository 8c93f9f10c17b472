/**
 * The writer's side of a gift before it leaves: argument checks, taking the buffers away from the
 * user (detaching them) while keeping their memory, and describing it for each path.
 */
import { PagegiftError } from './errors.ts'
import { native, type Span } from './native.ts'
import { dropRegion, extentsOf, isAligned, mapExtents, pageSize, regionOf, roundUp, type Extent, type Region } from './pages.ts'
import { MAX_DATA } from './wire.ts'

export type GiftPath = 'move' | 'cma' | 'splice' | 'copy'
export const PATHS: readonly GiftPath[] = ['move', 'cma', 'splice', 'copy']
export type GiftData = ArrayBuffer | ArrayBufferView | Array<ArrayBuffer | ArrayBufferView>
export const MAX_BUFFERS = 1024
const NOT_GIFTABLE = 'source not giftable (use alloc())'

/** One gifted buffer: giftable pages (extents, with `skew` bytes before the data) or heap memory. */
interface Item {
  length: number
  extents?: Extent[]
  skew: number
  heap?: Uint8Array
  /** The whole buffer behind `heap` (taken from the user), or a copy of a pooled Buffer's bytes. */
  whole?: ArrayBuffer
  mapped?: ArrayBuffer
  /** The user's (detached, still mapped) giftable buffer and the data's offset in it. */
  region?: Region
  offset: number
  /** Why these bytes cannot move as pages, or undefined when they can. */
  why?: string
  /** An inline gift's copy of giftable bytes, taken before they were detached. */
  copy?: Uint8Array
}

function isPooled (view: ArrayBufferView): boolean {
  // Small Buffers share Node's pool ArrayBuffer; detaching it would break unrelated Buffers.
  return Buffer.isBuffer(view) && view.buffer.byteLength === Buffer.poolSize && view.byteLength < Buffer.poolSize
}

export class Sources {
  readonly items: Item[]
  readonly lengths: number[]
  readonly total: number
  /** Why move is not possible, or undefined when it is. */
  readonly notMovable?: string
  readonly notes: string[]
  /** The bytes to send inline with the offer (views of them, in order), when the gift is that small. */
  inline?: Uint8Array[]

  /** The user's detached giftable buffers, still mapped until release() or recover(). */
  #detached: Region[]

  private constructor (items: Item[], notes: string[], detached: Region[]) {
    this.#detached = detached
    this.items = items
    this.lengths = items.map((i) => i.length)
    this.total = this.lengths.reduce((a, b) => a + b, 0)
    this.notes = notes
    this.notMovable = items.map((i) => i.why).find((w) => w !== undefined)
  }

  /**
   * The common small gift, taken without the general checks' arrays and maps: one buffer given
   * whole, not pooled, of at most `room` bytes (`pagesRoom` when it is giftable). Its bytes are
   * copied by `copy` (which returns where they now are) and the user's buffer is detached, as take()
   * would do. Anything else: undefined, and nothing is taken.
   */
  static takeSmall (data: GiftData, room: number, pagesRoom: number, copy: (bytes: Uint8Array) => Uint8Array): Sources | undefined {
    const ab = data instanceof ArrayBuffer ? data : ArrayBuffer.isView(data) ? data.buffer : undefined
    if (!(ab instanceof ArrayBuffer) || ab.byteLength === 0) return undefined
    const view = data as ArrayBuffer | ArrayBufferView
    if (ArrayBuffer.isView(view) && (view.byteOffset !== 0 || view.byteLength !== ab.byteLength || isPooled(view))) return undefined
    const region = regionOf(ab)
    if (ab.byteLength > (region !== undefined ? pagesRoom : room)) return undefined
    const heap = copy(new Uint8Array(ab))
    // Giftable memory stays mapped (detached) until the gift settles, as take() keeps it: a failed
    // gift hands back its pages.
    if (region !== undefined) region.gifted = true
    native.detach(ab)
    const item: Item = { length: heap.byteLength, skew: 0, offset: 0, heap, region, why: region !== undefined ? undefined : NOT_GIFTABLE }
    const sources = new Sources([item], [], region !== undefined ? [region] : [])
    sources.inline = [heap]
    return sources
  }

  /**
   * Checks `data`, then detaches it from the user: from here on only this object reaches the memory.
   * A gift that is not forced to a path and is small enough keeps its bytes in `inline`: at most
   * `inlineMax.pages` bytes when its pages could move, else at most `inlineMax.other`.
   */
  static take (data: GiftData, forced?: GiftPath, inlineMax = { pages: 0, other: 0 }): Sources {
    const list = Array.isArray(data) ? data : [data]
    if (list.length === 0 || list.length > MAX_BUFFERS) throw new RangeError(`The "data" argument must hold 1 to ${MAX_BUFFERS} buffers. Received ${list.length}`)
    const views = list.map((d, i) => {
      if (d instanceof ArrayBuffer) return new Uint8Array(d)
      if (ArrayBuffer.isView(d)) {
        if (!(d.buffer instanceof ArrayBuffer)) throw new TypeError(`The "data[${i}]" argument is backed by a SharedArrayBuffer, which other threads share and which cannot be gifted`)
        return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
      }
      throw new TypeError(`The "data${Array.isArray(data) ? `[${i}]` : ''}" argument must be an ArrayBuffer or an ArrayBufferView`)
    })
    views.forEach((v, i) => {
      if (v.byteLength === 0) throw new RangeError(`The "data${Array.isArray(data) ? `[${i}]` : ''}" argument is empty or already detached (gifted or released)`)
    })
    const planned = views.map((v, i) => ({ v, region: regionOf(v.buffer), pooled: ArrayBuffer.isView(list[i]) && isPooled(list[i] as ArrayBufferView) }))
    const total = views.reduce((n, v) => n + v.byteLength, 0)
    const movable = planned.every(({ v, region }) => region !== undefined && whyNotAligned(v.byteOffset, v.byteLength, region.byteLength) === undefined)
    const inline = forced === undefined && total <= (movable ? inlineMax.pages : inlineMax.other)
    if (forced === 'move') {
      const why = planned.map(({ v, region }) => region === undefined ? NOT_GIFTABLE : whyNotAligned(v.byteOffset, v.byteLength, region.byteLength)).find((w) => w !== undefined)
      if (why !== undefined) throw new PagegiftError('ERR_PAGEGIFT_PATH_UNAVAILABLE', `Cannot gift by the forced path 'move': ${why}`)
    }
    const notes: string[] = []
    const kept = new Map<ArrayBufferLike, ArrayBuffer>()
    const items = planned.map(({ v: live, region, pooled }): Item => {
      // A plain copy of the view's coordinates: the view itself reads as empty once its buffer is detached.
      const v = { buffer: live.buffer, byteOffset: live.byteOffset, byteLength: live.byteLength }
      if (region !== undefined) {
        const start = Math.floor(v.byteOffset / pageSize) * pageSize
        const extents = extentsOf(region, start, roundUp(v.byteOffset + v.byteLength) - start)
        for (const e of extents) e.memfd.ref()
        // Copied now: once detached, the mapping has no view to send from.
        const copy = inline ? new Uint8Array(live) : undefined
        return { length: v.byteLength, extents, skew: v.byteOffset - start, region, offset: v.byteOffset, copy, why: whyNotAligned(v.byteOffset, v.byteLength, region.byteLength) }
      }
      if (pooled) {
        notes.push('a pooled Buffer cannot be detached without breaking other Buffers, so its bytes were copied first')
        const heap = new Uint8Array(live)
        return { length: v.byteLength, skew: 0, offset: 0, heap, whole: heap.buffer, why: NOT_GIFTABLE }
      }
      let ab = kept.get(v.buffer)
      if (ab === undefined) {
        // A small buffer going inline is copied (a few µs less than a transfer, and its bytes are
        // copied into the message anyway); anything else changes hands without a copy.
        ab = inline && v.buffer.byteLength <= MAX_DATA ? (v.buffer as ArrayBuffer).slice(0) : structuredClone(v.buffer as ArrayBuffer, { transfer: [v.buffer as ArrayBuffer] })
        // structuredClone copies what it may not transfer (buffers marked untransferable, like Node's
        // Buffer pool or an embedder's) and leaves the source attached: detach those by hand.
        if (v.buffer.byteLength !== 0) native.detach(v.buffer as ArrayBuffer)
        kept.set(v.buffer, ab)
      }
      return { length: v.byteLength, skew: 0, offset: 0, heap: new Uint8Array(ab, v.byteOffset, v.byteLength), whole: ab, why: NOT_GIFTABLE }
    })
    // Detach now, but unmap only once the gift is settled: a large munmap competes for the CPU
    // with the reader while it maps the pages, and the pages stay alive through the memfds anyway.
    // Until then release() and fdOf() refuse them (`gifted`): the copying paths still read their pages.
    const regions = new Set(planned.flatMap(({ region }) => region !== undefined ? [region] : []))
    for (const region of regions) {
      region.gifted = true
      native.detach(region.ab)
    }
    const sources = new Sources(items, notes, [...regions])
    if (inline) sources.inline = items.map((item) => item.copy ?? item.heap as Uint8Array)
    return sources
  }

  /** The move descriptor: per buffer, [fdIndex, offset, length] extents; and the fds to send. */
  moveDescriptor (): { extents: number[][][], fds: number[] } {
    const fds: number[] = []
    const index = new Map<number, number>()
    const extents = this.items.map((item) => (item.extents ?? []).map((e) => {
      let i = index.get(e.memfd.fd)
      if (i === undefined) {
        i = fds.length
        fds.push(e.memfd.fd)
        index.set(e.memfd.fd, i)
      }
      return [i, e.offset, e.length]
    }))
    return { extents, fds }
  }

  /** Byte views of the gifted memory, for the paths that copy; giftable pages are mapped again here. */
  views (): Uint8Array[] {
    return this.items.map((item) => {
      if (item.heap !== undefined) return item.heap
      item.mapped ??= mapExtents(item.extents as Extent[], item.skew + item.length)
      return new Uint8Array(item.mapped, item.skew, item.length)
    })
  }

  /**
   * The gifted bytes as spans for the cma and splice paths. Giftable bytes are read where the user's
   * (detached) mapping still has them: a new mapping would fault every page in again.
   */
  spans (): Span[] {
    return this.items.map((item): Span => item.region !== undefined ? [item.region.handle, item.offset, item.length] : [item.heap as Uint8Array, 0, item.length])
  }

  /** [address, length] pairs of the gifted bytes, for a cma reader to process_vm_readv. */
  addresses (): number[] {
    return native.addresses(this.spans().flat())
  }

  /** The gift is delivered: let go of the memory. */
  release (): void {
    this.inline = undefined
    for (const region of this.#detached.splice(0)) dropRegion(region)
    for (const item of this.items) {
      if (item.mapped !== undefined) dropRegion(regionOf(item.mapped) ?? fail())
      for (const e of item.extents ?? []) e.memfd.unref()
      item.extents = undefined
      item.heap = undefined
      item.copy = undefined
      item.whole = undefined
      item.region = undefined
    }
  }

  /**
   * The gift failed: hand the data back as new ArrayBuffers, so that nothing is lost. Each one is
   * the whole buffer behind the gifted view (the gift detached all of it), in the order of `data`;
   * views of one buffer get the same ArrayBuffer back.
   */
  recover (): ArrayBuffer[] {
    const regions = new Map<Region, ArrayBuffer>()
    const out = this.items.map((item): ArrayBuffer => {
      if (item.whole !== undefined) return item.whole
      // A small gift's bytes were copied into a buffer that many share (takeSmall): they come back alone.
      if (item.heap !== undefined && item.region === undefined) return item.heap.slice().buffer
      const region = item.region as Region
      let ab = regions.get(region)
      if (ab === undefined) {
        ab = mapExtents(region.pages.extents, region.byteLength)
        regions.set(region, ab)
      }
      return ab
    })
    this.release()
    return out
  }
}

function fail (): never {
  throw new PagegiftError('ERR_PAGEGIFT_INTERNAL', 'internal mapping lost')
}

function whyNotAligned (offset: number, length: number, bufferLength: number): string | undefined {
  if (!isAligned(offset)) return 'source not page aligned'
  if (!isAligned(length) && offset + length !== bufferLength) return 'source not a whole number of pages'
  return undefined
}

/** What the writer learns of a delivered gift. */
export interface GiftReceipt {
  /** The path the bytes took: 'move' (no copy), 'cma' or 'splice' (one copy), or 'copy'. */
  path: GiftPath
  bytes: number
  /** Why a better path was not taken. */
  reason?: string
}

/** What the reader gets. */
export interface Gift {
  /** The received buffers: new giftable ArrayBuffers, or the ArrayBuffers of `into`. */
  buffers: ArrayBuffer[]
  meta: unknown
  path: GiftPath
  bytes: number
  /** Why a better path was not taken. */
  reason?: string
}
