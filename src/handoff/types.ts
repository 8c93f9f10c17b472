/** Public types of the live handoff. The Handle class itself lives in handles.ts. */
import type { Handle } from './handles.ts'

export type { Handle }

/** Who handed over to us. */
export interface Origin { pid: number, version: string, generation: number }

/** What a successor inherits: the predecessor's regions, handles and metadata. */
export interface Inherited {
  regions: Record<string, ArrayBuffer>
  handles: Record<string, Handle>
  meta: unknown
  from: Origin
}

/** What `onHandoff` returns: the state to hand over. A number in `handles` is a raw fd. */
export interface HandoffState {
  regions?: Record<string, ArrayBuffer | ArrayBufferView>
  handles?: Record<string, Handle | number>
  meta?: unknown
}

/** Passed to `onHandoff`: the process asking to take over. */
export interface SuccessorInfo { pid: number, uid: number, version: string }

/** How one region travelled. `share` maps the same sealed memfd pages (no copy). */
export interface RegionReport { name: string, bytes: number, path: 'share' | 'move' | 'cma' | 'splice' | 'copy', reason?: string }

/** One finished handoff, as kept in the history and reported by `handedOff` and `pagegift status`. */
export interface HandoffRecord {
  /** Generation that took over. */
  generation: number
  fromPid: number
  toPid: number
  version: string
  at: string
  /** CLOCK_MONOTONIC from "stopped serving" (predecessor) to "serving" (successor); null if the successor never said. */
  downtimeMs: number | null
  /** CLOCK_MONOTONIC from "stopped serving" to COMMIT sent, as the predecessor saw it. */
  pauseMs: number
  bytes: number
  regions: RegionReport[]
  handles: number
}

/** The `handedOff` event payload. */
export type HandedOffInfo = HandoffRecord

export interface JoinOptions {
  /** Free-form version string shown by `pagegift status`. */
  version?: string
  /** Successor: HELLO to READY budget the predecessor grants, and our wait for STATE and COMMIT. Default 10 s. */
  timeoutMs?: number
  /** How long a new connection may take to say what it wants. Default 2 s. */
  helloTimeoutMs?: number
  /** Exit the process after a committed handoff (after `handedOff` listeners ran). Default true. */
  exitOnHandoff?: boolean
  /** Test seam: replaces parts of the environment (syscalls, clock, fault-injection steps). */
  env?: Partial<import('./env.ts').Env>
}

/** `pagegift status` payload. */
export interface StatusReport {
  generation: number
  pid: number
  version: string
  startedAt: string
  uptimeMs: number
  state: 'serving' | 'handing-off' | 'handed-off'
  regions: { name: string, bytes: number }[]
  handles: { name: string, kind: string }[]
  history: HandoffRecord[]
}

/** Events streamed to a `watch` client (the `pagegift upgrade` command). */
export type WatchEvent =
  | { event: 'start', pid: number, version: string }
  | { event: 'progress', region: string, bytes: number, total: number }
  | { event: 'committed', record: HandoffRecord }
  | { event: 'resumed', reason: string, code: string }
