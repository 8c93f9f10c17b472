/**
 * Everything the handoff does to the outside world, in one replaceable object (as tableflip's env.go):
 * channels, fds, memory mappings, the clock, liveness checks and named fault-injection steps. Tests
 * pass `join(path, { env: { step } })` to kill a real process at an exact point of the protocol.
 */
import { readFileSync } from 'node:fs'
import { PerformanceObserver, performance } from 'node:perf_hooks'
import { getHeapSpaceStatistics } from 'node:v8'
import * as core from './core.ts'

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

/** Protocol points where tests inject failures (typically `process.kill(process.pid, 'SIGKILL')`). */
export type Step =
  | 'successor:connected' | 'successor:hello-sent' | 'successor:state-received' | 'successor:before-ready' | 'successor:ready-sent' | 'successor:serving'
  | 'predecessor:hello-received' | 'predecessor:stopped' | 'predecessor:quiesced' | 'predecessor:state-sent' | 'predecessor:ready-received' | 'predecessor:committed'

export interface Env {
  connect (path: string): Promise<HandoffChannel>
  listen (path: string): Promise<HandoffServer>
  dup (fd: number): number
  closeFd (fd: number): void
  /** Describes a giftable buffer as sendable memfd extents, or null if it is not giftable. */
  share (buf: ArrayBuffer): { fds: number[], extents: { fd: number, offset: number, length: number }[] } | null
  /** Maps received memfd extents as one giftable buffer; takes ownership of `fds` (closes them). */
  map (fds: number[], extents: { fd: number, offset: number, length: number }[], byteLength: number): ArrayBuffer
  /** Giftable memory for a region that travels down the gift ladder. */
  alloc (byteLength: number): ArrayBuffer
  release (buf: ArrayBuffer): void
  /** CLOCK_MONOTONIC in ns; comparable across processes on one host. */
  now (): bigint
  pid: number
  isAlive (pid: number): boolean
  step (name: Step): void | Promise<void>
  /** Successor, before PREPARED: waits out the garbage collection that mapping large regions sets off. */
  settle (): Promise<void>
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * V8 counts a mapped region as external memory; a large one starts a collection ("external memory
 * pressure") that would otherwise finish in the middle of the critical section. Idle until no GC has
 * run for QUIET_MS (at most MAX_MS): this costs the successor time while the predecessor still serves.
 */
export async function settle (): Promise<void> {
  const QUIET_MS = 15
  const MAX_MS = 300
  const start = performance.now()
  let last = start
  const obs = new PerformanceObserver(() => { last = performance.now() })
  obs.observe({ entryTypes: ['gc'] })
  try {
    do await sleep(5)
    while (performance.now() - last < QUIET_MS && performance.now() - start < MAX_MS)
  } finally {
    obs.disconnect()
  }
  emptyYoungGeneration()
}

const youngUsed = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_used_size ?? 0

/**
 * Allocates short-lived garbage until a scavenge has run, so that the young generation starts the
 * critical section empty and the few hundred KB it allocates cannot trigger one there.
 */
export function emptyYoungGeneration (): void {
  let before = youngUsed()
  let junk: unknown = null
  for (let i = 1; i <= 1 << 20; i++) {
    junk = new Array(32)
    if ((i & 1023) === 0) {
      const now = youngUsed()
      if (now < before) break
      before = now
    }
  }
  if (junk === undefined) throw new Error('unreachable')
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
  connect: core.connect,
  listen: core.listen,
  dup: core.dup,
  closeFd: core.closeFd,
  share: core.share,
  map: core.map,
  alloc: core.alloc,
  release: core.release,
  now: () => process.hrtime.bigint(),
  pid: process.pid,
  isAlive,
  step: () => {},
  settle,
}

export function makeEnv (overrides?: Partial<Env>): Env {
  return { ...defaultEnv, ...overrides }
}
