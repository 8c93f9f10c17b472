/**
 * The serving side: answer status and watch requests, and run one handoff at a time. A handoff
 * checks the successor's key, offers the regions while we still serve, quiesces (onHandoff), sends
 * STATE while keeping every reference, waits for READY within the pause budget, COMMITs, and lets
 * go of its handles only once SERVING arrives. Any failure before SERVING resumes every exported
 * handle: nothing is lost, nothing is refused. Connections whose output was still queued drain
 * after SERVING, while the successor holds its own writes to them.
 */
import { PagegiftError } from '../errors.ts'
import type { Env, HandoffChannel } from './env.ts'
import { collectExports, fdHandle, flushHandle, Handle, handleClosed, hasQueuedOutput, releaseHandle, resumeHandle, wireFd } from './handles.ts'
import { keyMatches } from './key.ts'
import { LIMITS, MIN_PROTOCOL_VERSION, msg, negotiate, parseFirst, parsePrepared, parseReady, parseServing, type HandleWire, type HelloMsg } from './protocol.ts'
import { sendBulk } from './bulk.ts'
import { offerable, planRegions, sendGifts } from './regions.ts'
import type { HandoffRecord, HandoffState, RegionReport, StatusReport, SuccessorInfo, WatchEvent } from './types.ts'

/** What the predecessor logic needs from its Generation. */
export interface Serving {
  env: Env
  generation: number
  version: string
  timeoutMs: number
  helloTimeoutMs: number
  pauseBudgetMs: number
  /** The service's key; a successor must present it. */
  key: string
  /** The layout version of each region, as this build writes it. */
  layouts: Record<string, number>
  handler: ((s: SuccessorInfo) => HandoffState | Promise<HandoffState>) | undefined
  /** Regions to offer before quiescing (see Generation.offerRegions). */
  offer: (() => Record<string, ArrayBuffer>) | undefined
  busyWith: number | null
  history: HandoffRecord[]
  /** True while an authorized watcher (pagegift upgrade) holds off every commit. */
  fenced (): boolean
  status (): StatusReport
  broadcast (e: WatchEvent): void
  addWatcher (ch: HandoffChannel, v: number, authorized: boolean): void
  /** Stops accepting successors on the handoff socket (once SERVING arrived). */
  unlisten (): Promise<void>
  /** SERVING arrived: the successor serves; our draining connections follow. */
  committed (record: HandoffRecord): void
  /** Every connection drained: nothing of ours is left to serve. */
  retired (): void
  resumed (err: Error, afterCommit: boolean): void
}

// ERR_PAGEGIFT_CLOSED too: a send on a channel the peer's death already closed.
const peerGone = (err: unknown): boolean => ['ERR_PAGEGIFT_PEER_CLOSED', 'ERR_PAGEGIFT_CLOSED', 'EPIPE', 'ECONNRESET'].includes(code(err))
const code = (err: unknown): string => (err as { code?: unknown }).code as string ?? 'ERR_PAGEGIFT_HANDOFF'

/** Handles one connection to the handoff socket; never throws. */
export async function onConnection (s: Serving, ch: HandoffChannel): Promise<void> {
  let first: { msg: unknown, fds: number[] }
  try {
    first = await ch.recv({ timeoutMs: s.helloTimeoutMs })
  } catch {
    ch.close()
    return
  }
  for (const fd of first.fds) s.env.closeFd(fd)
  let v = MIN_PROTOCOL_VERSION
  try {
    const m = parseFirst(first.msg)
    v = negotiate(m.max)
    if (m.t === 'status') {
      await ch.send(msg.status(v, s.status()))
      ch.close()
    } else if (m.t === 'watch') {
      s.addWatcher(ch, v, keyMatches(s.key, m.key))
      await ch.send(msg.status(v, s.status()))
    } else {
      admit(s, m)
      await runHandoff(s, ch, m, v)
    }
  } catch (err) {
    await ch.send(msg.refused(v, code(err), (err as Error).message)).catch(() => {})
    ch.close()
  }
}

/** Refuses a HELLO that may not start a handoff, before anything is offered or paused. */
function admit (s: Serving, hello: HelloMsg): void {
  if (!keyMatches(s.key, hello.key)) {
    const why = hello.max === undefined ? 'it speaks protocol version 1, which has no key (a downgrade to the previous release is not supported)' : hello.key === undefined ? 'it presented none' : 'it presented another one'
    throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_KEY', `only a successor with this service's key may take over (join() reads it from the key file beside the handoff socket); ${why}`)
  }
  if (s.busyWith !== null) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_BUSY', `a handoff to pid ${s.busyWith} is already running; only one successor at a time`)
  if (s.fenced()) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_CANCELLED', 'pagegift upgrade cancelled the upgrade it started; no successor may take over until it exits')
  if (s.handler === undefined) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_UNSUPPORTED', `generation ${s.generation} (pid ${s.env.pid}) has no onHandoff handler`)
}

/**
 * Rejects when the channel closes, when HELLO to READY outlasts `timeoutMs`, or when the pause (from
 * quiescing on) outlasts the pause budget; `race` wraps every wait of the handoff. `kick` restarts
 * the pause budget while the successor makes progress receiving a copied region.
 */
function guard (ch: HandoffChannel, timeoutMs: number, budgetMs: number): { race: <T>(p: Promise<T>) => Promise<T>, pause: () => void, kick: () => void, done: () => void } {
  let fail!: (err: Error) => void
  const failed = new Promise<never>((_, reject) => { fail = reject })
  failed.catch(() => {})
  const onClose = (err?: Error): void => fail(new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', `the successor went away before commit${err !== undefined ? `: ${err.message}` : ''}`, { cause: err }))
  ch.on('close', onClose)
  const timer = setTimeout(() => fail(new PagegiftError('ERR_PAGEGIFT_HANDOFF_TIMEOUT', `the successor did not reach READY within ${timeoutMs} ms`)), timeoutMs)
  let pauseTimer: NodeJS.Timeout | undefined
  const pause = (): void => {
    clearTimeout(pauseTimer)
    pauseTimer = setTimeout(() => fail(new PagegiftError('ERR_PAGEGIFT_HANDOFF_TIMEOUT', `the successor did not reach READY within the pause budget (${budgetMs} ms) while the service was paused`)), budgetMs)
  }
  return {
    race: async <T>(p: Promise<T>) => await Promise.race([p, failed]),
    pause,
    kick: () => { if (pauseTimer !== undefined) pause() },
    done: () => { clearTimeout(timer); clearTimeout(pauseTimer); ch.off('close', onClose) },
  }
}

function toHandles (handles: HandoffState['handles']): [string, Handle][] {
  if (handles === undefined) return []
  if (typeof handles !== 'object' || handles === null) throw new TypeError('onHandoff: handles must be an object')
  return Object.entries(handles).map(([name, h]) => {
    if (typeof h === 'number') return [name, fdHandle(h)]
    if (!(h instanceof Handle)) throw new TypeError(`onHandoff: handles.${name} must be a Handle or an fd`)
    return [name, h]
  })
}

function checkState (state: unknown): HandoffState {
  if (typeof state !== 'object' || state === null) throw new TypeError('onHandoff must return { regions?, handles?, meta? }')
  const st = state as HandoffState
  if (st.regions !== undefined && (typeof st.regions !== 'object' || st.regions === null)) throw new TypeError('onHandoff: regions must be an object')
  if (Object.keys(st.regions ?? {}).length > LIMITS.regions) throw new RangeError(`onHandoff: at most ${LIMITS.regions} regions`)
  return st
}

/** What the critical section produced, for the commit that follows it. */
interface Sent { stoppedAt: bigint, pauseNs: bigint, regions: RegionReport[], handles: [string, Handle][], draining: string[] }

async function runHandoff (s: Serving, ch: HandoffChannel, hello: HelloMsg, v: number): Promise<void> {
  s.busyWith = hello.pid
  s.broadcast({ event: 'start', pid: hello.pid, version: hello.version })
  const g = guard(ch, s.timeoutMs, s.pauseBudgetMs)
  const stopCollecting = collectExports()
  const progress = { returned: [] as [string, Handle][], handlerDone: Promise.resolve() as Promise<unknown> }
  let sent: Sent
  try {
    sent = await handOver(s, ch, hello, v, g, stopCollecting, progress)
  } catch (err) {
    g.done()
    stopCollecting()
    await progress.handlerDone
    const why = peerGone(err) ? new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', `the successor (pid ${hello.pid}) went away before commit`, { cause: err }) : err as Error
    await rollback(s, ch, v, why, [...new Set([...stopCollecting(), ...progress.returned.map(([, h]) => h)])], false)
    return
  }
  g.done()
  await Promise.resolve(s.env.step('predecessor:committed')).catch(() => {})
  const servingAt = await awaitServing(s, ch, v)
  if (servingAt instanceof Error) {
    await rollback(s, ch, v, servingAt, sent.handles.map(([, h]) => h), true)
    return
  }
  // The successor waits for the socket path (EADDRINUSE) until we let go of it here.
  await s.unlisten().catch(() => {})
  s.committed(record(s, hello, sent, servingAt))
  await drain(s, ch, v, sent)
  ch.close()
  for (const [, h] of sent.handles) releaseHandle(h)
  s.retired()
}

/** Quiesce, STATE, READY, COMMIT: everything from "stopped serving" to the commit point. */
async function handOver (s: Serving, ch: HandoffChannel, hello: HelloMsg, v: number, g: ReturnType<typeof guard>, stopCollecting: () => Handle[], progress: { returned: [string, Handle][], handlerDone: Promise<unknown> }): Promise<Sent> {
  const { env } = s
  const { race } = g
  await race(Promise.resolve(env.step('predecessor:hello-received')))
  const offered = await offerRegions(s, ch, v, race)
  const stoppedAt = env.now()
  await race(Promise.resolve(env.step('predecessor:stopped')))
  const handler = s.handler as NonNullable<Serving['handler']>
  const handlerP = Promise.resolve().then(() => handler({ pid: hello.pid, uid: ch.peer.uid, version: hello.version }))
  progress.handlerDone = handlerP.catch(() => {})
  const state = checkState(await race(handlerP))
  // Quiesced: from here on the successor has the pause budget to reach READY.
  g.pause()
  stopCollecting()
  // A connection that closed meanwhile is left out; one with queued output moves now and drains after SERVING.
  const returned = progress.returned = toHandles(state.handles).filter(([, h]) => !handleClosed(h))
  const draining = v >= 2 ? returned.filter(([, h]) => hasQueuedOutput(h)).map(([name]) => name) : []
  // A version-1 successor cannot hold its writes for us: its connections flush before they move, as they did then.
  if (v < 2) await race(Promise.all(returned.map(async ([, h]) => await flushHandle(h))))
  await race(Promise.resolve(env.step('predecessor:quiesced')))
  const handleFds = returned.map(([, h]) => wireFd(h))
  const plan = planRegions(env, state.regions ?? {}, handleFds.length, offered, s.layouts)
  const handles: HandleWire[] = returned.map(([name, h], i) => ({ name, kind: h.kind, fd: i, pending: h.pending.toString('base64'), info: { ...h.info }, ...(draining.includes(name) ? { draining: true } : {}) }))
  const stateMsg = { t: 'state', v, generation: s.generation + 1, from: { pid: env.pid, version: s.version, generation: s.generation }, stoppedAt: stoppedAt.toString(), regions: plan.wire, handles, meta: state.meta ?? null }
  await race(sendBulk(ch, 'state', stateMsg, [...handleFds, ...plan.fds], v))
  await race(Promise.resolve(env.step('predecessor:state-sent')))
  const gifted = await race(sendGifts(ch, plan, (region, bytes, total) => { g.kick(); s.broadcast({ event: 'progress', region, bytes, total }) }))
  const ready = await race(ch.recv())
  for (const fd of ready.fds) env.closeFd(fd)
  parseReady(ready.msg, v)
  await race(Promise.resolve(env.step('predecessor:ready-received')))
  if (ch.closed) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', 'the successor went away before commit')
  // The fence and COMMIT are decided in one turn of the event loop: pagegift upgrade never kills a successor we committed to.
  if (s.fenced()) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_CANCELLED', 'pagegift upgrade gave up on this successor (its --timeout passed) before COMMIT')
  s.broadcast({ event: 'committing', pid: hello.pid })
  await race(ch.send(msg.commit(v)))
  const regions = plan.wire.map((r) => gifted.get(r.name) ?? { name: r.name, bytes: r.byteLength, path: 'share' as const })
  return { stoppedAt, pauseNs: env.now() - stoppedAt, regions, handles: returned, draining }
}

/**
 * OFFER, then wait for PREPARED, all while we still serve: the successor maps the offered regions
 * (and checks their layouts) before the predecessor stops serving, so neither lands in the pause.
 */
async function offerRegions (s: Serving, ch: HandoffChannel, v: number, race: <T>(p: Promise<T>) => Promise<T>): Promise<Map<string, ArrayBuffer>> {
  const offered = s.offer !== undefined ? offerable(s.env, s.offer()) : new Map<string, ArrayBuffer>()
  const plan = planRegions(s.env, Object.fromEntries(offered), 0, undefined, s.layouts)
  // The history travels here too: it does not change during the handoff, so it need not cost downtime.
  const history = s.history.slice(-(LIMITS.history - 1))
  await race(sendBulk(ch, 'offer', { t: 'offer', v, regions: plan.wire, history }, plan.fds, v))
  const r = await race(ch.recv())
  for (const fd of r.fds) s.env.closeFd(fd)
  parsePrepared(r.msg, v)
  return offered
}

/**
 * After COMMIT: SERVING, sent by the successor before it opens its gate. If its end closes without
 * SERVING, it never served a byte nor touched a region, so we resume. If it stays silent (stopped,
 * say) or sends anything else, it may still open its gate later: it is killed before we resume.
 */
async function awaitServing (s: Serving, ch: HandoffChannel, v: number): Promise<bigint | Error> {
  const pid = ch.peer.pid
  try {
    const r = await ch.recv({ timeoutMs: s.timeoutMs })
    for (const fd of r.fds) s.env.closeFd(fd)
    return BigInt(parseServing(r.msg, v).servingAt)
  } catch (err) {
    if (peerGone(err)) return new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', `the successor (pid ${pid}) went away after COMMIT, before SERVING: it never served, so this generation resumes`, { cause: err })
    try { process.kill(pid, 'SIGKILL') } catch {}
    await new Promise<void>((resolve) => { if (ch.closed) resolve(); else { ch.on('close', () => resolve()); setTimeout(resolve, 2000).unref() } })
    return new PagegiftError(code(err) === 'ERR_PAGEGIFT_TIMEOUT' ? 'ERR_PAGEGIFT_HANDOFF_TIMEOUT' : code(err), `the successor (pid ${pid}) sent no SERVING after COMMIT (${(err as Error).message}): it was killed, and this generation resumes`, { cause: err })
  }
}

/** Flushes the output still queued on the draining connections, telling the successor about each. */
async function drain (s: Serving, ch: HandoffChannel, v: number, sent: Sent): Promise<void> {
  const until = Date.now() + s.timeoutMs
  await Promise.all(sent.handles.filter(([name]) => sent.draining.includes(name)).map(async ([name, h]) => {
    const ok = await Promise.race([flushHandle(h), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), Math.max(0, until - Date.now())).unref())])
    await ch.send(msg.drained(v, name, ok)).catch(() => {})
    releaseHandle(h)
  }))
}

function record (s: Serving, hello: HelloMsg, sent: Sent, servingAt: bigint): HandoffRecord {
  return {
    generation: s.generation + 1,
    fromPid: s.env.pid,
    toPid: hello.pid,
    version: hello.version,
    at: new Date().toISOString(),
    downtimeMs: Number(servingAt - sent.stoppedAt) / 1e6,
    pauseMs: Number(sent.pauseNs) / 1e6,
    bytes: sent.regions.reduce((n, r) => n + r.bytes, 0),
    regions: sent.regions,
    handles: sent.handles.length,
  }
}

async function rollback (s: Serving, ch: HandoffChannel, v: number, err: Error, handles: Handle[], afterCommit: boolean): Promise<void> {
  // ABORT goes out before we serve again, so a live successor can never believe it committed.
  if (!ch.closed && !afterCommit) await ch.send(msg.abort(v, code(err), err.message)).catch(() => {})
  ch.close()
  for (const h of handles) resumeHandle(h)
  s.busyWith = null
  s.resumed(err, afterCommit)
}
