/**
 * The serving side: answer status and watch requests, and run one handoff at a time. A handoff
 * quiesces (onHandoff), sends STATE while keeping every reference, waits for READY, then COMMITs.
 * Any failure before COMMIT resumes every exported handle: nothing is lost, nothing is refused.
 */
import { PagegiftError } from '../errors.ts'
import type { Env, HandoffChannel } from './env.ts'
import { collectExports, fdHandle, flushHandle, Handle, releaseHandle, resumeHandle, wireFd } from './handles.ts'
import { LIMITS, msg, PROTOCOL_VERSION, parseFirst, parsePrepared, parseReady, parseServing, type HandleWire, type HelloMsg } from './protocol.ts'
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
  handler: ((s: SuccessorInfo) => HandoffState | Promise<HandoffState>) | undefined
  /** Regions to offer before quiescing (see Generation.offerRegions). */
  offer: (() => Record<string, ArrayBuffer>) | undefined
  busyWith: number | null
  history: HandoffRecord[]
  status (): StatusReport
  broadcast (e: WatchEvent): void
  addWatcher (ch: HandoffChannel): void
  /** Stops accepting successors on the handoff socket (just after COMMIT). */
  unlisten (): Promise<void>
  committed (record: HandoffRecord): void
  resumed (err: Error): void
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
  try {
    const m = parseFirst(first.msg)
    if (m.t === 'status') {
      await ch.send(msg.status(s.status()))
      ch.close()
    } else if (m.t === 'watch') {
      s.addWatcher(ch)
      await ch.send(msg.status(s.status()))
    } else if (s.busyWith !== null) {
      throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_BUSY', `a handoff to pid ${s.busyWith} is already running; only one successor at a time`)
    } else if (s.handler === undefined) {
      throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_UNSUPPORTED', `generation ${s.generation} (pid ${s.env.pid}) has no onHandoff handler`)
    } else {
      await runHandoff(s, ch, m)
    }
  } catch (err) {
    await ch.send(msg.refused(code(err), (err as Error).message)).catch(() => {})
    ch.close()
  }
}

/** Rejects when the channel closes or the deadline passes; `race` wraps every wait of the handoff. */
function guard (ch: HandoffChannel, timeoutMs: number): { race: <T>(p: Promise<T>) => Promise<T>, done: () => void } {
  let fail!: (err: Error) => void
  const failed = new Promise<never>((_, reject) => { fail = reject })
  failed.catch(() => {})
  const onClose = (err?: Error): void => fail(new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', `the successor went away before commit${err !== undefined ? `: ${err.message}` : ''}`, { cause: err }))
  ch.on('close', onClose)
  const timer = setTimeout(() => fail(new PagegiftError('ERR_PAGEGIFT_HANDOFF_TIMEOUT', `the successor did not reach READY within ${timeoutMs} ms`)), timeoutMs)
  return {
    race: async <T>(p: Promise<T>) => await Promise.race([p, failed]),
    done: () => { clearTimeout(timer); ch.off('close', onClose) },
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
interface Sent { stoppedAt: bigint, pauseNs: bigint, regions: RegionReport[], handles: [string, Handle][] }

async function runHandoff (s: Serving, ch: HandoffChannel, hello: HelloMsg): Promise<void> {
  s.busyWith = hello.pid
  s.broadcast({ event: 'start', pid: hello.pid, version: hello.version })
  const g = guard(ch, s.timeoutMs)
  const stopCollecting = collectExports()
  const progress = { returned: [] as [string, Handle][], handlerDone: Promise.resolve() as Promise<unknown> }
  let sent: Sent
  try {
    sent = await handOver(s, ch, hello, g.race, stopCollecting, progress)
  } catch (err) {
    g.done()
    stopCollecting()
    await progress.handlerDone
    const why = peerGone(err) ? new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', `the successor (pid ${hello.pid}) went away before commit`, { cause: err }) : err as Error
    await rollback(s, ch, why, [...new Set([...stopCollecting(), ...progress.returned.map(([, h]) => h)])])
    return
  }
  // Committed: from here on nothing may roll back, whatever fails.
  g.done()
  await Promise.resolve(s.env.step('predecessor:committed')).catch(() => {})
  // The successor waits for the socket path (EADDRINUSE) until we let go of it here.
  await s.unlisten().catch(() => {})
  await finishCommit(s, ch, hello, sent)
}

/** Quiesce, STATE, READY, COMMIT: everything from "stopped serving" to the commit point. */
async function handOver (s: Serving, ch: HandoffChannel, hello: HelloMsg, race: <T>(p: Promise<T>) => Promise<T>, stopCollecting: () => Handle[], progress: { returned: [string, Handle][], handlerDone: Promise<unknown> }): Promise<Sent> {
  const { env } = s
  await race(Promise.resolve(env.step('predecessor:hello-received')))
  const offered = await offerRegions(s, ch, race)
  const stoppedAt = env.now()
  await race(Promise.resolve(env.step('predecessor:stopped')))
  const handler = s.handler as NonNullable<Serving['handler']>
  const handlerP = Promise.resolve().then(() => handler({ pid: hello.pid, uid: ch.peer.uid, version: hello.version }))
  progress.handlerDone = handlerP.catch(() => {})
  const state = checkState(await race(handlerP))
  stopCollecting()
  progress.returned = toHandles(state.handles)
  const open = await race(Promise.all(progress.returned.map(async ([, h]) => await flushHandle(h))))
  const returned = progress.returned = progress.returned.filter((_, i) => open[i])
  await race(Promise.resolve(env.step('predecessor:quiesced')))
  const handleFds = returned.map(([, h]) => wireFd(h))
  const plan = planRegions(env, state.regions ?? {}, handleFds.length, offered)
  const handles: HandleWire[] = returned.map(([name, h], i) => ({ name, kind: h.kind, fd: i, pending: h.pending.toString('base64'), info: { ...h.info } }))
  const stateMsg = { t: 'state', v: PROTOCOL_VERSION, generation: s.generation + 1, from: { pid: env.pid, version: s.version, generation: s.generation }, stoppedAt: stoppedAt.toString(), regions: plan.wire, handles, meta: state.meta ?? null }
  await race(sendBulk(ch, 'state', stateMsg, [...handleFds, ...plan.fds]))
  await race(Promise.resolve(env.step('predecessor:state-sent')))
  const gifted = await race(sendGifts(ch, plan, (region, bytes, total) => s.broadcast({ event: 'progress', region, bytes, total })))
  const ready = await race(ch.recv())
  for (const fd of ready.fds) env.closeFd(fd)
  parseReady(ready.msg)
  await race(Promise.resolve(env.step('predecessor:ready-received')))
  if (ch.closed) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', 'the successor went away before commit')
  await race(ch.send(msg.commit()))
  const regions = plan.wire.map((r) => gifted.get(r.name) ?? { name: r.name, bytes: r.byteLength, path: 'share' as const })
  return { stoppedAt, pauseNs: env.now() - stoppedAt, regions, handles: returned }
}

/**
 * OFFER, then wait for PREPARED, all while we still serve: the successor maps the offered regions
 * and lets the garbage collection that this sets off finish, so neither lands in the downtime.
 */
async function offerRegions (s: Serving, ch: HandoffChannel, race: <T>(p: Promise<T>) => Promise<T>): Promise<Map<string, ArrayBuffer>> {
  const offered = s.offer !== undefined ? offerable(s.env, s.offer()) : new Map<string, ArrayBuffer>()
  const plan = planRegions(s.env, Object.fromEntries(offered), 0)
  // The history travels here too: it does not change during the handoff, so it need not cost downtime.
  const history = s.history.slice(-(LIMITS.history - 1))
  await race(sendBulk(ch, 'offer', { t: 'offer', v: PROTOCOL_VERSION, regions: plan.wire, history }, plan.fds))
  const r = await race(ch.recv())
  for (const fd of r.fds) s.env.closeFd(fd)
  parsePrepared(r.msg)
  return offered
}

async function finishCommit (s: Serving, ch: HandoffChannel, hello: HelloMsg, { stoppedAt, pauseNs, regions, handles }: Sent): Promise<void> {
  let downtimeMs: number | null = null
  try {
    const r = await ch.recv({ timeoutMs: 2000 })
    for (const fd of r.fds) s.env.closeFd(fd)
    downtimeMs = Number(BigInt(parseServing(r.msg).servingAt) - stoppedAt) / 1e6
  } catch {
    // The successor serves anyway; only its own report of the downtime is missing.
  }
  ch.close()
  for (const [, h] of handles) releaseHandle(h)
  s.committed({
    generation: s.generation + 1,
    fromPid: s.env.pid,
    toPid: hello.pid,
    version: hello.version,
    at: new Date().toISOString(),
    downtimeMs,
    pauseMs: Number(pauseNs) / 1e6,
    bytes: regions.reduce((n, r) => n + r.bytes, 0),
    regions,
    handles: handles.length,
  })
}

async function rollback (s: Serving, ch: HandoffChannel, err: Error, handles: Handle[]): Promise<void> {
  // ABORT goes out before we serve again, so a live successor can never believe it committed.
  if (!ch.closed) await ch.send(msg.abort(code(err), err.message)).catch(() => {})
  ch.close()
  for (const h of handles) resumeHandle(h)
  s.busyWith = null
  s.resumed(err)
}
