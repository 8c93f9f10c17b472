/**
 * Contributors add up: liveHttp, the app and a pagegift/map cache each call `gen.onHandoff` and
 * `gen.offerRegions`, and the handoff gets the union of what they return. The handoff of this
 * release keeps one handler of each kind, so this registers one of each that runs them all. Once
 * the handoff takes several contributors itself (issue 10), this file goes away.
 */
import { PagegiftError, type handoff } from '../index.ts'

type Gen = handoff.Generation
type State = handoff.HandoffState
type Handler = (s: handoff.SuccessorInfo) => State | Promise<State>
type Offer = () => Record<string, ArrayBuffer>

const added = new WeakSet<Gen>()

function union<T> (into: Record<string, T>, from: Record<string, T> | undefined, what: string): void {
  for (const [name, x] of Object.entries(from ?? {})) {
    if (name in into) throw new PagegiftError('ERR_PAGEGIFT_HTTP_CONTRIBUTORS', `two contributors to the handoff both name ${what} '${name}'`)
    into[name] = x
  }
}

/** Makes `gen.onHandoff` and `gen.offerRegions` add a contributor instead of replacing the last one. */
export function addUp (gen: Gen): void {
  if (added.has(gen)) return
  added.add(gen)
  const handlers: Handler[] = []
  const offers: Offer[] = []
  const baseOn = gen.onHandoff.bind(gen)
  const baseOffer = gen.offerRegions.bind(gen)
  gen.onHandoff = (fn: Handler) => {
    if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be a function')
    if (handlers.push(fn) === 1) baseOn(async (s) => await runAll(handlers, s))
    return gen
  }
  gen.offerRegions = (fn: Offer) => {
    if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be a function')
    if (offers.push(fn) === 1) {
      baseOffer(() => {
        const regions: Record<string, ArrayBuffer> = {}
        for (const offer of offers) union(regions, offer(), 'region')
        return regions
      })
    }
    return gen
  }
}

/** Runs every contributor in the order they registered; one `meta` at most (the app's). */
async function runAll (handlers: Handler[], s: handoff.SuccessorInfo): Promise<State> {
  const regions: NonNullable<State['regions']> = {}
  const handles: NonNullable<State['handles']> = {}
  let meta: unknown
  for (const fn of handlers) {
    const st = await fn(s)
    union(regions, st.regions, 'region')
    union(handles, st.handles, 'handle')
    if (st.meta !== undefined) {
      if (meta !== undefined) throw new PagegiftError('ERR_PAGEGIFT_HTTP_CONTRIBUTORS', 'two contributors to the handoff both return meta: keep one, or put the other in a region')
      meta = st.meta
    }
  }
  return { regions, handles, meta }
}
