/**
 * One handoff, as the serving generation runs it, top to bottom: OFFER the regions while still
 * serving, quiesce (the onHandoff contributors), send STATE while keeping every reference, wait for
 * READY within the pause budget, COMMIT, and let go only once SERVING arrives. Any failure before
 * SERVING resumes every exported handle: nothing is lost, nothing is refused. Connections whose
 * output was still queued drain after SERVING while the successor holds its own writes to them.
 *
 * `handOff` is a protocol function: it takes the OS layer, the channel and what the Generation
 * decided (a `HandoffJob`), and returns what happened. The Generation owns the phase.
 */
import type net from 'node:net'
import { PagegiftError } from '../errors.ts'
import { testPoint as defaultPoint } from '../testhook.ts'
import { within } from '../within.ts'
import type { Env, HandoffChannel } from './env.ts'
import { collectingExports, exportedSocket, fdHandle, movableFd, flushHandle, Handle, handleClosed, hasQueuedOutput, releaseHandle, resumeHandle, wireFd } from './handles.ts'
import { LIMITS, msg, parsePrepared, parseReady, parseServing, type HelloMsg } from './protocol.ts'
import { sendBulk } from './bulk.ts'
import { offerable, planRegions, sendGifts } from './regions.ts'
import { COMMIT_MARKS, marksWire, phasesOf, type Marks } from './phases.ts'
import type { HandoffRecord, HandoffState, RegionReport, SuccessorInfo, WatchEvent } from './types.ts'

/** What the Generation hands the protocol: fixed inputs, and the few questions only it can answer. */
export interface HandoffJob {
  hello: HelloMsg
  /** The protocol version negotiated from HELLO. */
  v: number
  generation: number
  version: string
  timeoutMs: number
  pauseBudgetMs: number
  /** The layout version of each region, as this build writes it. */
  layouts: Record<string, number>
  /** The history to carry (a copy). */
  history: HandoffRecord[]
  /** The regions to offer before quiescing (every offerRegions contributor). */
  offer: () => Record<string, ArrayBuffer>
  /** The connections to offer with them (every offerSockets contributor); protocol version 3 on. */
  offerSockets?: () => Record<string, net.Socket>
  /** Quiesces and returns the state (every onHandoff contributor). */
  quiesce: (successor: SuccessorInfo) => Promise<HandoffState>
  /** Asked in the same turn as COMMIT goes out: true if pagegift upgrade gave up on this successor. */
  fenced: () => boolean
  /** Progress for watchers: progress, committing. */
  event: (e: WatchEvent) => void
  /** The test points (src/testhook.ts); prime() rehearses without them. */
  point?: (name: string) => Promise<void>
}

export type HandoffResult =
  | { outcome: 'committed', record: HandoffRecord, drain: () => Promise<void>, draining: boolean }
  | { outcome: 'resumed', error: Error, afterCommit: boolean }

// ERR_PAGEGIFT_CLOSED too: a send on a channel the peer's death already closed.
const peerGone = (err: unknown): boolean => ['ERR_PAGEGIFT_PEER_CLOSED', 'ERR_PAGEGIFT_CLOSED', 'EPIPE', 'ECONNRESET'].includes(code(err))
export const code = (err: unknown): string => (err as { code?: unknown }).code as string ?? 'ERR_PAGEGIFT_HANDOFF'

/** What the critical section produced, for the commit that follows it. */
interface Sent { stoppedAt: bigint, pauseNs: bigint, regions: RegionReport[], handles: [string, Handle][], draining: string[], marks: Marks }

/** Runs one handoff on a channel whose HELLO the Generation admitted. Never throws. */
export async function handOff (env: Env, ch: HandoffChannel, job: HandoffJob): Promise<HandoffResult> {
  const g = guard(ch, job.timeoutMs, job.pauseBudgetMs)
  const exported: Handle[] = []
  const returned: [string, Handle][] = []
  let sent: Sent
  try {
    sent = await handOver(env, ch, job, g, exported, returned)
  } catch (err) {
    g.done()
    await g.quiesced
    const why = peerGone(err) ? new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', `the successor (pid ${job.hello.pid}) went away before commit`, { cause: err }) : err as Error
    return await rollback(ch, job.v, why, [...new Set([...exported, ...returned.map(([, h]) => h)])], false)
  }
  g.done()
  await (job.point ?? defaultPoint)('predecessor:committed')
  const serving = await awaitServing(env, ch, job)
  if (serving instanceof Error) return await rollback(ch, job.v, serving, sent.handles.map(([, h]) => h), true)
  return {
    outcome: 'committed',
    record: record(env, job, sent, serving),
    draining: sent.draining.length > 0,
    drain: async () => {
      await drain(ch, job, sent)
      ch.close()
      for (const [, h] of sent.handles) releaseHandle(h)
    },
  }
}

/** Quiesce, STATE, READY, COMMIT: everything from "stopped serving" to the commit point. */
async function handOver (env: Env, ch: HandoffChannel, job: HandoffJob, g: Guard, exported: Handle[], returned: [string, Handle][]): Promise<Sent> {
  const { race } = g
  const { v } = job
  const point = job.point ?? defaultPoint
  await race(point('predecessor:hello-received'))
  const offered = await offer(env, ch, job, race)
  const stoppedAt = env.now()
  await race(point('predecessor:stopped'))
  const quiescing = collectingExports(env, exported, async () => await job.quiesce({ pid: job.hello.pid, uid: ch.peer.uid, version: job.hello.version }))
  g.quiesced = quiescing.catch(() => {})
  const state = await race(quiescing)
  // Quiesced: from here on the successor has the pause budget to reach READY.
  g.pause()
  // A connection that closed meanwhile is left out; one with queued output moves now and drains after SERVING.
  returned.push(...toHandles(state.handles).filter(([, h]) => !handleClosed(h)))
  const draining = v >= 2 ? returned.filter(([, h]) => hasQueuedOutput(h)).map(([name]) => name) : []
  // A version-1 successor cannot hold its writes for us: its connections flush before they move, as they did then.
  if (v < 2) await race(Promise.all(returned.map(async ([, h]) => await flushHandle(h))))
  const marks: Marks = { stopped: stoppedAt, quiesced: env.now() }
  await race(point('predecessor:quiesced'))
  // A connection offered before the pause, exported under its name, is already with the successor: no fd.
  const isOffered = (name: string, h: Handle): boolean => { const s = exportedSocket(h); return s !== undefined && offered.sockets.get(name) === s }
  const handleFds: number[] = []
  const handles = returned.map(([name, h]) => {
    // On the wire an offered handle has no fd at all (the successor reads it as -1).
    const via = isOffered(name, h) ? { offered: true } : { fd: handleFds.push(wireFd(h)) - 1 }
    return { name, kind: h.kind, ...via, pending: h.pending.toString('base64'), info: { ...h.info }, ...(draining.includes(name) ? { draining: true } : {}) }
  })
  const plan = planRegions(env, state.regions ?? {}, handleFds.length, offered.regions, job.layouts)
  const stateMsg = { t: 'state', v, generation: job.generation + 1, from: { pid: env.pid, version: job.version, generation: job.generation }, stoppedAt: stoppedAt.toString(), regions: plan.wire, handles, meta: state.meta ?? null }
  // Marked as it goes out, not after: the successor it wakes may take this CPU until it has sent READY.
  await race(sendBulk(ch, 'state', stateMsg, [...handleFds, ...plan.fds], v, () => { marks.stateSent = env.now() }))
  await race(point('predecessor:state-sent'))
  const gifted = await race(sendGifts(ch, plan, (region, bytes, total) => { g.kick(); job.event({ event: 'progress', region, bytes, total }) }))
  if (plan.gifts.length > 0) marks.stateSent = env.now()
  const ready = await race(ch.recv())
  for (const fd of ready.fds) env.closeFd(fd)
  parseReady(ready.msg, v)
  await race(point('predecessor:ready-received'))
  if (ch.closed) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', 'the successor went away before commit')
  // The fence and COMMIT are decided in one turn of the event loop: pagegift upgrade never kills a successor we committed to.
  if (job.fenced()) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_CANCELLED', 'pagegift upgrade gave up on this successor (its --timeout passed) before COMMIT')
  job.event({ event: 'committing', pid: job.hello.pid })
  marks.commit = env.now()
  // A version-1 successor (the previous release) gets COMMIT as it knows it.
  await race(ch.send(msg.commit(v, v >= 2 ? marksWire(marks, COMMIT_MARKS) : undefined)))
  const regions = plan.wire.map((r) => gifted.get(r.name) ?? { name: r.name, bytes: r.byteLength, path: 'share' as const })
  return { stoppedAt, pauseNs: env.now() - stoppedAt, regions, handles: returned, draining, marks }
}

/** What the OFFER gave the successor before the pause: regions, and connections by name. */
interface Offered { regions: Map<string, ArrayBuffer>, sockets: Map<string, net.Socket> }

/**
 * OFFER, then wait for PREPARED, all while we still serve: the successor maps the offered regions
 * (and checks their layouts) and wraps the offered connections before the predecessor stops
 * serving, so none of it lands in the pause. The history travels here too: it does not change
 * during the handoff.
 */
async function offer (env: Env, ch: HandoffChannel, job: HandoffJob, race: Guard['race']): Promise<Offered> {
  const regions = offerable(env, job.offer())
  const plan = planRegions(env, Object.fromEntries(regions), 0, undefined, job.layouts)
  const history = job.history.slice(-(LIMITS.history - 1))
  const sockets = job.v >= 3 ? dupSockets(env, job.offerSockets?.() ?? {}) : []
  const wire = job.v >= 3 ? { sockets: sockets.map(([name], i) => ({ name, fd: plan.fds.length + i })) } : {}
  const sending = sendBulk(ch, 'offer', { t: 'offer', v: job.v, regions: plan.wire, history, ...wire }, [...plan.fds, ...sockets.map(([, , fd]) => fd)], job.v)
  // Our dups close once the send is over, even when we stop waiting for it first: never while it may still read them.
  const closeDups = (): void => { for (const [, , fd] of sockets) env.closeFd(fd) }
  sending.then(closeDups, closeDups)
  await race(sending)
  const r = await race(ch.recv())
  for (const fd of r.fds) env.closeFd(fd)
  parsePrepared(r.msg, job.v)
  return { regions, sockets: new Map(sockets.map(([name, socket]) => [name, socket])) }
}

/**
 * A dup of each open connection's fd, as [name, socket, dup]. One that is closed, still connecting
 * or TLS, or has a name too long for the wire, is left out (it travels in STATE as usual if exported),
 * and so is everything after a failed dup (out of fds): offering is an optimization, never a failure.
 */
function dupSockets (env: Env, sockets: Record<string, net.Socket>): Array<[string, net.Socket, number]> {
  const out: Array<[string, net.Socket, number]> = []
  for (const [name, socket] of Object.entries(sockets)) {
    if (out.length >= LIMITS.handles) break
    const fd = movableFd(socket)
    if (fd < 0 || name.length > LIMITS.name) continue
    try {
      out.push([name, socket, env.dup(fd)])
    } catch {
      break
    }
    // Node keeps the peer's address once asked: exportSocket's info then costs no getpeername in the pause.
    void socket.remoteAddress
  }
  return out
}

/**
 * After COMMIT: SERVING, sent by the successor before it opens its gate. If its end closes without
 * SERVING, it never served a byte nor touched a region, so we resume. If it stays silent (stopped,
 * say) or sends anything else, it may still open its gate later: it is killed before we resume.
 */
async function awaitServing (env: Env, ch: HandoffChannel, job: HandoffJob): Promise<Partial<Marks> | Error> {
  const pid = ch.peer.pid
  try {
    const r = await ch.recv({ timeoutMs: job.timeoutMs })
    for (const fd of r.fds) env.closeFd(fd)
    const s = parseServing(r.msg, job.v)
    return { ...s.at, serving: BigInt(s.servingAt) }
  } catch (err) {
    if (peerGone(err)) return new PagegiftError('ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE', `the successor (pid ${pid}) went away after COMMIT, before SERVING: it never served, so this generation resumes`, { cause: err })
    try { process.kill(pid, 'SIGKILL') } catch {}
    await new Promise<void>((resolve) => { if (ch.closed) resolve(); else { ch.on('close', () => resolve()); setTimeout(resolve, 2000).unref() } })
    return new PagegiftError(code(err) === 'ERR_PAGEGIFT_TIMEOUT' ? 'ERR_PAGEGIFT_HANDOFF_TIMEOUT' : code(err), `the successor (pid ${pid}) sent no SERVING after COMMIT (${(err as Error).message}): it was killed, and this generation resumes`, { cause: err })
  }
}

/** Flushes the output still queued on the draining connections, telling the successor about each. */
async function drain (ch: HandoffChannel, job: HandoffJob, sent: Sent): Promise<void> {
  const until = Date.now() + job.timeoutMs
  await Promise.all(sent.handles.filter(([name]) => sent.draining.includes(name)).map(async ([name, h]) => {
    const ok = await within(flushHandle(h), Math.max(0, until - Date.now()), false)
    await ch.send(msg.drained(job.v, name, ok)).catch(() => {})
    releaseHandle(h)
  }))
}

async function rollback (ch: HandoffChannel, v: number, err: Error, handles: Handle[], afterCommit: boolean): Promise<HandoffResult> {
  // ABORT goes out before we serve again, so a live successor can never believe it committed.
  if (!ch.closed && !afterCommit) await ch.send(msg.abort(v, code(err), err.message)).catch(() => {})
  ch.close()
  for (const h of handles) resumeHandle(h)
  return { outcome: 'resumed', error: err, afterCommit }
}

function record (env: Env, job: HandoffJob, sent: Sent, serving: Partial<Marks>): HandoffRecord {
  const servingAt = serving.serving as bigint
  return {
    generation: job.generation + 1,
    fromPid: env.pid,
    toPid: job.hello.pid,
    version: job.hello.version,
    at: new Date().toISOString(),
    downtimeMs: Number(servingAt - sent.stoppedAt) / 1e6,
    pauseMs: Number(sent.pauseNs) / 1e6,
    bytes: sent.regions.reduce((n, r) => n + r.bytes, 0),
    regions: sent.regions,
    handles: sent.handles.length,
    phases: phasesOf({ ...sent.marks, adopted: serving.adopted, ready: serving.ready, serving: servingAt }),
    stoppedAt: sent.stoppedAt.toString(),
  }
}

interface Guard {
  race: <T>(p: Promise<T>) => Promise<T>
  /** Starts the pause budget (at the quiesce). */
  pause: () => void
  /** Restarts the pause budget while the successor makes progress receiving a copied region. */
  kick: () => void
  done: () => void
  /** Settles when the contributors have returned or failed: a rollback waits for them. */
  quiesced: Promise<unknown>
}

/**
 * Rejects when the channel closes, when HELLO to READY outlasts `timeoutMs`, or when the pause (from
 * the quiesce on) outlasts the pause budget; `race` wraps every wait of the handoff.
 */
function guard (ch: HandoffChannel, timeoutMs: number, budgetMs: number): Guard {
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
    quiesced: Promise.resolve(),
  }
}

function toHandles (handles: HandoffState['handles']): [string, Handle][] {
  if (handles === undefined) return []
  return Object.entries(handles).map(([name, h]) => {
    if (typeof h === 'number') return [name, fdHandle(h)]
    if (!(h instanceof Handle)) throw new TypeError(`onHandoff: handles.${name} must be a Handle or an fd`)
    return [name, h]
  })
}
