/**
 * A gift offer as the reader sees it: parsed and checked from the wire, and the plan for moving its
 * pages into a reader's own memory.
 */
import { Memfd, isAligned, mappable, regionOf, roundUp, type Extent } from './pages.ts'
import { MAX_BUFFERS, PATHS, type GiftPath } from './sources.ts'
import { obj, protocolError, str, uint, uints } from './wire.ts'

const MAX_TOTAL = 2 ** 47

/** A validated offer; its fds are wrapped as Memfds, which the reader lets go of once the gift settles. */
export interface Offer {
  id: number
  lengths: number[]
  total: number
  meta: unknown
  forced?: GiftPath
  why?: string
  move?: Array<Array<{ memfd: Memfd, offset: number, length: number }>>
  memfds: Memfd[]
  cma?: { pid: number, iov: number[] }
  /** An inline gift's bytes, already here: plain ArrayBuffers, one per buffer. */
  inline?: ArrayBuffer[]
}

export interface Move { region: NonNullable<ReturnType<typeof regionOf>>, at: number, extent: Extent }

/** Plans a move into the reader's views, or says why the pages cannot land there. */
export function planMove (offer: Offer, into: Uint8Array[]): Move[] | string {
  const src = (offer.move ?? []).flatMap((extents, i) => {
    let left = offer.lengths[i]
    return extents.map((e) => { const length = Math.min(e.length, left); left -= length; return { ...e, length } })
  }).filter((s) => s.length > 0)
  const out: Move[] = []
  let s = 0
  let sUsed = 0
  let left = offer.total
  for (const view of into) {
    const region = regionOf(view.buffer)
    if (region === undefined) return 'into target not giftable (use alloc())'
    let at = view.byteOffset
    let room = Math.min(view.byteLength, left)
    while (room > 0) {
      const piece = src[s]
      const n = Math.min(room, piece.length - sUsed)
      const offset = piece.offset + sUsed
      if (!isAligned(at) || !isAligned(offset)) return 'into target not page aligned'
      if (!isAligned(n) && at + n !== region.byteLength) return 'into target not a whole number of pages'
      out.push({ region, at, extent: { memfd: piece.memfd, offset, length: roundUp(n) } })
      at += n
      room -= n
      left -= n
      sUsed += n
      if (sUsed === piece.length) { s++; sUsed = 0 }
    }
    if (left === 0) break
  }
  return out
}

export function unsealed (offer: Offer): string | undefined {
  for (const extents of offer.move ?? []) {
    for (const e of extents) {
      const why = mappable(e.memfd.fd, e.offset, e.length)
      if (why !== undefined) return why
    }
  }
  return undefined
}


export function parseCma (x: unknown): { pid: number, iov: number[] } {
  const c = obj(x, 'cma')
  const iov = uints(c.iov, 'cma.iov', 2 * MAX_BUFFERS)
  if (iov.length % 2 !== 0) throw protocolError('cma.iov is not address/length pairs')
  return { pid: uint(c.pid, 'cma.pid', 2 ** 22), iov }
}

/** Validates an offer; closes the fds it arrived with when it is malformed. */
export function parseOffer (x: unknown, fds: number[]): Offer {
  const memfds = fds.map((fd) => new Memfd(fd))
  try {
    const o = obj(x, 'offer')
    const lengths = uints(o.lengths, 'lengths', MAX_BUFFERS)
    const total = lengths.reduce((a, b) => a + b, 0)
    if (lengths.length === 0 || lengths.includes(0) || total > MAX_TOTAL) throw protocolError('lengths out of range')
    const forced = o.forced === undefined ? undefined : str(o.forced, 'forced') as GiftPath
    if (forced !== undefined && !PATHS.includes(forced)) throw protocolError('unknown forced path')
    const offer: Offer = { id: uint(o.id, 'id'), lengths, total, meta: o.meta, forced, memfds, why: o.why === undefined ? undefined : str(o.why, 'why') }
    if (o.move !== undefined) {
      if (!Array.isArray(o.move) || o.move.length !== lengths.length) throw protocolError('move has the wrong number of buffers')
      const used = new Set<number>()
      offer.move = o.move.map((list: unknown, i: number) => {
        if (!Array.isArray(list) || list.length === 0 || list.length > 4096) throw protocolError(`move[${i}] is not a list of extents`)
        const extents = list.map((e: unknown) => {
          const [index, offset, length] = uints(e, 'extent', 3)
          if (index >= memfds.length || !isAligned(offset) || !isAligned(length) || length === 0) throw protocolError('extent out of range')
          used.add(index)
          return { memfd: memfds[index], offset, length }
        })
        if (extents.reduce((a, e) => a + e.length, 0) !== roundUp(lengths[i])) throw protocolError(`move[${i}] does not cover the buffer`)
        return extents
      })
      if (used.size !== memfds.length) throw protocolError('fds that no extent uses')
    } else if (memfds.length > 0) {
      throw protocolError('fds without a move')
    }
    if (o.cma !== undefined) offer.cma = parseCma(o.cma)
    return offer
  } catch (err) {
    for (const m of memfds) m.unref()
    throw err
  }
}
