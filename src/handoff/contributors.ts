/**
 * Contributors add up: several parts of an app (an HTTP wrapper and the app's own cache, say) can
 * each offer regions and quiesce their part of the service. Their regions, handles and meta are
 * merged; a name given twice is an error, never a silent overwrite.
 */
import type net from 'node:net'
import { LIMITS } from './protocol.ts'
import type { HandoffState, SuccessorInfo } from './types.ts'

export type Quiescer = (successor: SuccessorInfo) => HandoffState | Promise<HandoffState>
export type Offerer = () => Record<string, ArrayBuffer>
export type SocketOfferer = () => Record<string, net.Socket>

export class Contributors {
  readonly #quiescers: Quiescer[] = []
  readonly #offerers: Offerer[] = []
  readonly #socketOfferers: SocketOfferer[] = []

  get canHandOff (): boolean { return this.#quiescers.length > 0 }

  addQuiescer (fn: Quiescer): void { this.#quiescers.push(fn) }
  addOfferer (fn: Offerer): void { this.#offerers.push(fn) }
  addSocketOfferer (fn: SocketOfferer): void { this.#socketOfferers.push(fn) }

  /** Every contributor's offered regions. */
  offer (): Record<string, ArrayBuffer> {
    return merge('offerRegions', this.#offerers.map((fn) => fn()))
  }

  /** Every contributor's offered connections. */
  offerSockets (): Record<string, net.Socket> {
    return merge('offerSockets', this.#socketOfferers.map((fn) => fn()))
  }

  /** Runs every contributor's onHandoff, in the order they were added, and merges their states. */
  async quiesce (successor: SuccessorInfo): Promise<HandoffState> {
    const states: HandoffState[] = []
    for (const fn of this.#quiescers) states.push(checkState(await fn(successor)))
    if (states.length === 1) return states[0]
    const metas = states.map((s) => s.meta).filter((m) => m !== undefined)
    return {
      regions: merge('onHandoff regions', states.map((s) => s.regions ?? {})),
      handles: merge('onHandoff handles', states.map((s) => s.handles ?? {})),
      // One contributor's meta travels as is; several must be objects, merged key by key.
      ...(metas.length === 1 ? { meta: metas[0] } : metas.length > 1 ? { meta: merge('onHandoff meta', metas.map(metaObject)) } : {}),
    }
  }
}

function merge<T> (what: string, parts: Record<string, T>[]): Record<string, T> {
  const out: Record<string, T> = {}
  for (const part of parts) {
    for (const [name, value] of Object.entries(part)) {
      if (Object.hasOwn(out, name)) throw new TypeError(`${what}: '${name}' is given by two contributors`)
      out[name] = value
    }
  }
  return out
}

function metaObject (m: unknown): Record<string, unknown> {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new TypeError('onHandoff: with several contributors, each meta must be a plain object (they are merged)')
  return m as Record<string, unknown>
}

function checkState (state: unknown): HandoffState {
  if (typeof state !== 'object' || state === null) throw new TypeError('onHandoff must return { regions?, handles?, meta? }')
  const st = state as HandoffState
  if (st.regions !== undefined && (typeof st.regions !== 'object' || st.regions === null)) throw new TypeError('onHandoff: regions must be an object')
  if (st.handles !== undefined && (typeof st.handles !== 'object' || st.handles === null)) throw new TypeError('onHandoff: handles must be an object')
  if (Object.keys(st.regions ?? {}).length > LIMITS.regions) throw new RangeError(`onHandoff: at most ${LIMITS.regions} regions`)
  return st
}
