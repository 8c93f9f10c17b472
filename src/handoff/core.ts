/** The handoff's bindings to the core: channels, fds and giftable pages shared (not moved) by fd. */
import { check, PagegiftError } from '../errors.ts'
import { native } from '../native.ts'
import { alloc as allocPages, mapExtents, mappable, Memfd, regionOf, release as releasePages } from '../pages.ts'
import { connect as connectChannel, listen as listenChannel } from '../server.ts'
import type { HandoffChannel, HandoffServer } from './env.ts'

export async function connect (path: string): Promise<HandoffChannel> {
  return await connectChannel(path)
}

export async function listen (path: string): Promise<HandoffServer> {
  return await listenChannel(path)
}

export function dup (fd: number): number {
  return check(native.dup(fd), 'dup')
}

export function closeFd (fd: number): void {
  native.close(fd)
}

export const alloc = (byteLength: number): ArrayBuffer => allocPages(byteLength, { name: 'pagegift-handoff' })
export const release = (buf: ArrayBuffer): void => { releasePages(buf) }

/**
 * The memfd extents behind a giftable buffer. The fds stay ours (the channel dups them in flight).
 * Marking the memfds exported stops later page moves from punching holes the successor maps.
 */
export function share (buf: ArrayBuffer): { fds: number[], extents: { fd: number, offset: number, length: number }[] } | null {
  const region = regionOf(buf)
  if (region === undefined) return null
  const fds: number[] = []
  const extents = region.pages.extents.map((e) => {
    e.memfd.exported = true
    let i = fds.indexOf(e.memfd.fd)
    if (i < 0) i = fds.push(e.memfd.fd) - 1
    return { fd: i, offset: e.offset, length: e.length }
  })
  return { fds, extents }
}

/** Maps received extents; every fd is closed here whatever happens, the mapping keeps its own refs. */
export function map (fds: number[], extents: { fd: number, offset: number, length: number }[], byteLength: number): ArrayBuffer {
  const memfds = fds.map((fd) => new Memfd(fd))
  try {
    for (const e of extents) {
      const why = mappable(fds[e.fd], e.offset, e.length)
      if (why !== undefined) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_PROTOCOL', `handoff region refused: ${why}`)
    }
    return mapExtents(extents.map((e) => ({ memfd: memfds[e.fd], offset: e.offset, length: e.length })), byteLength)
  } finally {
    for (const m of memfds) m.unref()
  }
}
