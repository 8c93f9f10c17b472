/**
 * Where the pause goes: CLOCK_MONOTONIC marks taken by both sides of a handoff (one clock per host,
 * so they compare across processes), and the breakdown by phase computed from them. The
 * predecessor's marks travel to the successor in COMMIT, the successor's back in SERVING, so each
 * side's history record carries the whole breakdown.
 */
import type { PausePhases } from './types.ts'

/** Every mark of one handoff, in the order they happen; absent where the peer did not say (an older release). */
export interface Marks {
  /** Predecessor: stopped serving (before onHandoff). */
  stopped: bigint
  /** Predecessor: onHandoff returned, its handles checked. */
  quiesced?: bigint
  /** Predecessor: STATE handed to the kernel (or, with copied regions, the last of them sent). */
  stateSent?: bigint
  /** Successor: STATE received and validated, its fds wrapped as handles, its regions mapped. */
  adopted?: bigint
  /** Successor: READY sent (after its app adopted the handles). */
  ready?: bigint
  /** Predecessor: COMMIT going out (fence checked). */
  commit?: bigint
  /** Successor: SERVING going out (COMMIT received). The end of the downtime. */
  serving?: bigint
  /** Successor: its gate opened (connections read and write again, servers accept). */
  open?: bigint
}

const ORDER = ['quiesce', 'state', 'adopt', 'ready', 'commit', 'serving', 'open'] as const
const MARK: Record<typeof ORDER[number], Exclude<keyof Marks, 'stopped'>> = { quiesce: 'quiesced', state: 'stateSent', adopt: 'adopted', ready: 'ready', commit: 'commit', serving: 'serving', open: 'open' }

/**
 * The phases in ms, each from the end of the phase before. A mark of one process that answers a
 * message of the other happened after that message was sent, but the sender reads its clock just
 * after its send returns, which can be microseconds late: each mark is taken as at least the one
 * before, so no phase is negative. Phases up to `commit` add up to the pause, up to `serving` to the downtime.
 */
export function phasesOf (m: Marks): PausePhases {
  const out: Partial<Record<typeof ORDER[number], number | null>> = {}
  let at = m.stopped
  for (const phase of ORDER) {
    const t = m[MARK[phase]]
    if (t === undefined) { out[phase] = null; continue }
    const end = t > at ? t : at
    out[phase] = Number(end - at) / 1e6
    at = end
  }
  return out as PausePhases
}

type Wire = Record<string, string>

/** Marks as they travel (decimal strings), only those present. */
export function marksWire (m: Partial<Marks>, keys: readonly (keyof Marks)[]): Wire {
  const out: Wire = {}
  for (const k of keys) { const t = m[k]; if (t !== undefined) out[k] = t.toString() }
  return out
}

/** The marks each side sends: the predecessor's in COMMIT, the successor's in SERVING. */
export const COMMIT_MARKS = ['stopped', 'quiesced', 'stateSent', 'commit'] as const
export const SERVING_MARKS = ['adopted', 'ready'] as const
