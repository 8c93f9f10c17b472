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
  /** The layout version each region came with (0: the predecessor declared none); migrate from it. */
  layouts: Record<string, number>
}

/**
 * A region's layout: the version this build writes (sent with the region to a successor), and the
 * versions it can read from a predecessor (default: only `version`). A successor refuses a region
 * whose layout it cannot read before its predecessor pauses (ERR_PAGEGIFT_HANDOFF_LAYOUT).
 */
export interface LayoutSpec { version: number, accepts?: readonly number[] }

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

/**
 * The pause by phase, in ms, each from the end of the one before (CLOCK_MONOTONIC marks of both
 * processes, see phases.ts): `quiesce` the onHandoff contributors; `state` STATE built and sent;
 * `adopt` the successor received it, wrapped its fds and mapped its regions; `ready` the
 * successor's app adopted them and sent READY; `commit` READY reached the predecessor, which sent
 * COMMIT; `serving` COMMIT reached the successor, which sent SERVING. Up to `commit` they add up
 * to at most `pauseMs`, up to `serving` to `downtimeMs`. `open`: SERVING to the successor's gate
 * opening (it reads and accepts again), in the successor's record only. null: the peer did not
 * say (an older release).
 */
export interface PausePhases {
  quiesce: number | null
  state: number | null
  adopt: number | null
  ready: number | null
  commit: number | null
  serving: number | null
  open: number | null
}

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
  /** Where the pause went; absent in records an older release wrote. */
  phases?: PausePhases
  /**
   * CLOCK_MONOTONIC ns (decimal) when the predecessor stopped serving: one clock per host, so a
   * client on it can place its own gap against the pause. Absent in records an older release wrote.
   */
  stoppedAt?: string
  /** Set where a status report summed the region list up by path (report.ts): how many regions there were. */
  regionCount?: number
}

/** The `handedOff` event payload. */
export type HandedOffInfo = HandoffRecord

export interface JoinOptions {
  /** Free-form version string shown by `pagegift status`. */
  version?: string
  /** Successor: HELLO to READY budget the predecessor grants, and our wait for STATE and COMMIT. Default 10 s. */
  timeoutMs?: number
  /**
   * Predecessor: once quiesced (onHandoff returned), how long a successor may take to reach READY
   * before the handoff is rolled back and this generation serves again. Default 500 ms.
   */
  pauseBudgetMs?: number
  /**
   * Rehearse the handoff in memory once per process before joining (`handoff.prime()`), so that its
   * code is compiled before a real handoff, not inside its pause. Default true; costs ~20 ms once.
   */
  prime?: boolean
  /** Layout versions of the regions, by name: what this build writes and what it can read. */
  layouts?: Record<string, LayoutSpec>
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
  state: 'serving' | 'handing-off' | 'draining' | 'handed-off'
  regions: { name: string, bytes: number }[]
  handles: { name: string, kind: string }[]
  history: HandoffRecord[]
  /** What was left out to keep the report in one message (report.ts): the oldest history records, and list entries. */
  omitted?: { history: number, regions: number, handles: number }
}

/** Events streamed to a `watch` client (the `pagegift upgrade` command). */
export type WatchEvent =
  | { event: 'start', pid: number, version: string }
  | { event: 'progress', region: string, bytes: number, total: number }
  /** COMMIT is about to go out: from here on the successor must not be killed. */
  | { event: 'committing', pid: number }
  | { event: 'committed', record: HandoffRecord }
  /** `afterCommit`: the successor had been sent COMMIT but never said SERVING. */
  | { event: 'resumed', reason: string, code: string, afterCommit?: boolean }
  /** The answer to a watcher's fence: `committing` if COMMIT was already sent, so the successor must live. */
  | { event: 'fenced', granted: boolean, committing: boolean, reason?: string }
