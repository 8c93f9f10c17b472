/**
 * Everything the handoff does to the outside world, in one replaceable object (as tableflip's env.go):
 * channels, fds, memory mappings, the clock, liveness checks and named fault-injection steps. Tests
 * pass `join(path, { env: { step } })` to kill a real process at an exact point of the protocol.
 */
import { readFileSync } from 'node:fs'
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
  | 'successor:connected' | 'successor:hello-sent' | 'successor:state-received' | 'successor:before-ready' | 'successor:ready-sent' | 'successor:committed' | 'successor:serving'
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
}

export function makeEnv (overrides?: Partial<Env>): Env {
  return { ...defaultEnv, ...overrides }
}
