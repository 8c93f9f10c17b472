/**
 * The operating-system layer of the handoff, in one replaceable object (as tableflip's env.go):
 * channels, fds, memory mappings, the clock and liveness checks. Nothing else lives here: protocol
 * and policy are in the state machine, fault injection for tests in src/testhook.ts.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { setPriority } from 'node:os'
import { check, PagegiftError } from '../errors.ts'
import { native } from '../native.ts'
import { alloc as allocPages, mapExtents, mappable, Memfd, populate, regionOf, release as releasePages } from '../pages.ts'
import { connect as connectChannel, listen as listenChannel } from '../server.ts'

/** The subset of the core Channel that the handoff uses. */
export interface HandoffChannel {
  readonly closed: boolean
  readonly peer: { pid: number, uid: number, gid: number }
  send (msg: unknown, fds?: number[]): Promise<void>
  recv (opts?: { timeoutMs?: number }): Promise<{ msg: unknown, fds: number[] }>
  gift (data: ArrayBuffer | ArrayBufferView, opts?: { meta?: unknown }): Promise<{ path: string, bytes: number, reason?: string }>
  receive (opts?: { into?: ArrayBufferView }): Promise<{ buffers: ArrayBuffer[], meta: unknown, path: string, bytes: number, reason?: string }>
  close (): void
  on (event: 'close', fn: (err?: Error) => void): unknown
  off (event: 'close', fn: (err?: Error) => void): unknown
}

export interface HandoffServer {
  on (event: 'connection', fn: (ch: HandoffChannel) => void): unknown
  close (): Promise<void>
}

/** Memfd extents of a giftable buffer, by index into `fds`. */
export interface Shared { fds: number[], extents: { fd: number, offset: number, length: number }[] }

export interface Env {
  connect (path: string): Promise<HandoffChannel>
  listen (path: string): Promise<HandoffServer>
  dup (fd: number): number
  closeFd (fd: number): void
  /** Describes a giftable buffer as sendable memfd extents, or null if it is not giftable. */
  share (buf: ArrayBuffer): Shared | null
  /** Maps received memfd extents as one giftable buffer; takes ownership of `fds` (closes them). */
  map (fds: number[], extents: Shared['extents'], byteLength: number): ArrayBuffer
  /** Giftable memory for a region that travels down the gift ladder. */
  alloc (byteLength: number): ArrayBuffer
  release (buf: ArrayBuffer): void
  /** Maps a mapped region's page tables ahead of use, off the event loop, until `stop()` (best effort, never rejects). */
  populate (buf: ArrayBuffer, stop: () => boolean): Promise<void>
  /** CLOCK_MONOTONIC in ns; comparable across processes on one host. */
  now (): bigint
  pid: number
  isAlive (pid: number): boolean
  /** This process only winds down from now on: every thread of it yields the CPU to any other work. */
  yieldCpu (): void
}

/**
 * The memfd extents behind a giftable buffer. The fds stay ours (the channel dups them in flight).
 * Marking the memfds exported stops later page moves from punching holes the successor maps.
 */
function share (buf: ArrayBuffer): Shared | null {
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
function map (fds: number[], extents: Shared['extents'], byteLength: number): ArrayBuffer {
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

/**
 * Makes every thread of this process SCHED_IDLE (nice 19 where that is refused), for good. Per thread,
 * because Linux keeps the policy and the nice value per thread: os.setPriority() would leave libuv's
 * pool and V8's workers as they were, and an exiting process's unmapping runs on them. Threads started
 * later inherit it. SCHED_IDLE rather than nice 19: a CPU that runs only SCHED_IDLE threads counts as
 * idle when the scheduler places a woken task, so the successor's clients are not packed onto the
 * successor's CPU while ours unmaps.
 */
function yieldCpu (): void {
  let tids: string[] = []
  try { tids = readdirSync('/proc/self/task') } catch {}
  for (const t of tids) {
    if (native.schedIdle(Number(t)) < 0) { try { setPriority(Number(t), 19) } catch {} }
  }
}

/** True unless the process is gone or a zombie: a zombie can no longer serve. */
export function isAlive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

export const defaultEnv: Env = {
  connect: async (path) => await connectChannel(path),
  listen: async (path) => await listenChannel(path),
  dup: (fd) => check(native.dup(fd), 'dup'),
  closeFd: (fd) => { native.close(fd) },
  share,
  map,
  alloc: (byteLength) => allocPages(byteLength, { name: 'pagegift-handoff' }),
  release: (buf) => { releasePages(buf) },
  // Best effort: a fill that fails costs only the page faults it would have saved.
  populate: async (buf, stop) => { await populate(buf, stop).catch(() => {}) },
  now: () => process.hrtime.bigint(),
  pid: process.pid,
  isAlive,
  yieldCpu,
}

export function makeEnv (overrides?: Partial<Env>): Env {
  return { ...defaultEnv, ...overrides }
}
