/**
 * The successor side: HELLO, receive and validate STATE, map regions and wrap handles (held behind
 * a gate), then at ready(): READY, wait for COMMIT, open the gate. Nothing is served or mutated
 * before COMMIT, so a predecessor that rolls back finds everything as it left it.
 */
import type net from 'node:net'
import { PagegiftError } from '../errors.ts'
import { within } from '../within.ts'
import { testPoint as defaultPoint } from '../testhook.ts'

/** A named test point (src/testhook.ts); prime() passes one that does nothing. */
export type Point = (name: string) => Promise<void>
import type { Env, HandoffChannel, HandoffServer } from './env.ts'
import { inheritedHandle, prewrap, type Handle } from './handles.ts'
import { SuccessorGate } from './gate.ts'
import { PageFill } from './fill.ts'
import { msg, parseCommitReply, parseDrained, parseHelloReply, parseOffer, parseState, protocolError, type RegionWire, type StateMsg } from './protocol.ts'
import { recvBulk } from './bulk.ts'
import { mapShared, receiveGifts, releaseAll, takeOffered } from './regions.ts'
import { marksWire, phasesOf, SERVING_MARKS, type Marks } from './phases.ts'
import type { HandoffRecord, Inherited, LayoutSpec, RegionReport } from './types.ts'

export interface Inheritance {
  ch: HandoffChannel
  point: Point
  /** The protocol version negotiated with the predecessor. */
  v: number
  state: StateMsg
  history: HandoffRecord[]
  /** The path each gifted (copied) region took; shared and offered ones took none. */
  paths: Map<string, RegionReport['path']>
  inherited: Inherited
  gate: SuccessorGate
  /** The clock marks of this handoff so far (phases.ts): ours, and the predecessor's from COMMIT. */
  marks: Partial<Marks>
  /** The service key we presented (read by join()), null if the service had none. */
  key: string | null
  /**
   * Our handoff socket, bound beside the path while the predecessor still served (pathwatch.ts), or
   * null: ready() renames it over the path once SERVING is out. Closed by whoever gives up on it.
   */
  side: HandoffServer | null
  /** The page-table fill of our mapped regions: paused through the pause, resumed at the commit. */
  fill: PageFill
}

/** The longest PREPARED waits for the offered regions' page tables; the fill goes on after it. */
const PREPARE_FILL_MS = 1000

function closeFds (env: Env, fds: number[]): void { for (const fd of fds) env.closeFd(fd) }

function isPeerGone (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return code === 'ERR_PAGEGIFT_PEER_CLOSED' || code === 'ERR_PAGEGIFT_CLOSED' || code === 'EPIPE' || code === 'ECONNRESET'
}

/** What the successor presents and accepts: its key and the region layouts it can read. */
export interface Credentials {
  version: string
  key: string | null
  layouts: Record<string, LayoutSpec>
  /** Where to bind, before PREPARED, the socket our own successors will reach (null: bind nothing now). */
  side?: string | null
  /** Runs just before PREPARED (join(): one more rehearsal of the pause's code, prime.ts). */
  warm?: () => Promise<void>
}

/**
 * Refuses a region whose layout this build cannot read (checked at OFFER, before the predecessor
 * quiesces, and again at STATE). Regions it declares no layout for are taken as they come.
 */
export function checkLayouts (regions: RegionWire[], layouts: Record<string, LayoutSpec>): void {
  for (const r of regions) {
    const spec = Object.hasOwn(layouts, r.name) ? layouts[r.name] : undefined
    if (spec === undefined) continue
    const reads = spec.accepts ?? [spec.version]
    if (!reads.includes(r.layout)) {
      throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_LAYOUT', `region '${r.name}' has layout ${r.layout}${r.layout === 0 ? ' (undeclared)' : ''}, and this build reads layout${reads.length > 1 ? 's' : ''} ${reads.join(', ')} of it: nothing was handed over, the predecessor keeps serving`)
    }
  }
}

/** Runs HELLO to STATE on a connected channel; on any failure everything received is closed. */
export async function inherit (env: Env, ch: HandoffChannel, creds: Credentials, timeoutMs: number, testPoint: Point = defaultPoint): Promise<Inheritance> {
  await testPoint('successor:connected')
  const offered = new Map<string, ArrayBuffer>()
  // Connections offered before the pause, wrapped while the predecessor still serves them.
  const wrapped = new Map<string, net.Socket>()
  const fill = new PageFill(env)
  const history: HandoffRecord[] = []
  let side: HandoffServer | null = null
  try {
    await ch.send(msg.hello(env.pid, creds.version, creds.key))
    await testPoint('successor:hello-sent')
    let reply = await ch.recv({ timeoutMs })
    let head = parseHelloReply(reply.msg)
    // The predecessor answers in the version we both speak; everything after must stay at it.
    const v = head.v
    if (head.t === 'state') throw protocolError('STATE before OFFER')
    if (head.t === 'offer') {
      history.push(...await mapOffer(env, ch, reply, timeoutMs, offered, wrapped, v, creds.layouts, fill))
      // Only the admitted successor gets an OFFER, so the side name is ours; bound now, its cost is not in the pause.
      side = await bindSide(env, creds.side)
      await warmUp(creds.warm)
      await ch.send(msg.prepared(v))
      reply = await ch.recv({ timeoutMs })
      // STATE (or a refusal): the predecessor has stopped; the threadpool is the pause's until the commit.
      fill.pause()
      head = parseHelloReply(reply.msg, v)
      if (head.t === 'offer') throw protocolError('a second OFFER')
    }
    if (head.t === 'refused' || head.t === 'abort') {
      closeFds(env, reply.fds)
      throw new PagegiftError(head.code, `The predecessor ${head.t === 'refused' ? 'refused the handoff' : 'rolled back'}: ${head.reason}`)
    }
    const bulk = await recvBulk(env, ch, reply, timeoutMs, v)
    const inh: Inheritance = { ...await adopt(env, ch, bulk.body, bulk.fds, offered, wrapped, v, creds.layouts, testPoint), history, point: testPoint, key: creds.key, side, fill }
    // A predecessor that gives up on us (or dies) before COMMIT: the side name must not stay held by an app that never calls ready().
    ch.on('close', () => { if (!inh.gate.committed && inh.side !== null) { void inh.side.close(); inh.side = null } })
    return inh
  } catch (err) {
    await side?.close()
    fill.pause()
    releaseAll(env, Object.fromEntries(offered))
    for (const socket of wrapped.values()) socket.destroy()
    ch.close()
    if (isPeerGone(err)) {
      throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_PREDECESSOR_GONE', `The predecessor (pid ${ch.peer.pid}) went away before sending its state: nothing was handed over. Call join() again to start as generation 1.`, { cause: err })
    }
    throw err
  }
}

/** The longest the rehearsal before PREPARED may take: the predecessor serves on meanwhile, and waits for PREPARED. */
const WARM_MS = 1000

/**
 * Runs `warm` (join(): one more rehearsal of the pause's code) just before PREPARED: the
 * predecessor stops as soon as it has PREPARED, so what runs here is hot when STATE and the commit
 * come, a few milliseconds later. It costs the predecessor's clients nothing (it still serves), and
 * its failure or slowness costs the handoff nothing (bounded, errors ignored). A/B, 1 GiB, 8
 * clients, 3 x 20 handoffs interleaved: downtime median 3.67 -> 3.30 ms (Mann-Whitney p < 0.001),
 * client gap 6.09 -> 5.08 ms (p = 0.013), first to last client served 1.2 -> 0.4 ms.
 */
async function warmUp (warm: (() => Promise<void>) | undefined): Promise<void> {
  if (warm === undefined) return
  await within(Promise.resolve().then(warm).catch(() => {}), WARM_MS, undefined)
}

/** A failure to bind is no failure of the handoff: ready() then binds after SERVING, as before. */
async function bindSide (env: Env, side: string | null | undefined): Promise<HandoffServer | null> {
  if (side === null || side === undefined) return null
  try { return await env.listen(side) } catch { return null }
}

/** Maps the regions offered before the predecessor quiesced: this costs us time, not downtime. */
async function mapOffer (env: Env, ch: HandoffChannel, first: { msg: unknown, fds: number[] }, timeoutMs: number, out: Map<string, ArrayBuffer>, wrapped: Map<string, net.Socket>, v: number, layouts: Record<string, LayoutSpec>, fill: PageFill): Promise<HandoffRecord[]> {
  const bulk = await recvBulk(env, ch, first, timeoutMs, v)
  const consumed = new Set<number>()
  const mapped: Record<string, ArrayBuffer> = {}
  try {
    const offer = parseOffer(bulk.body, bulk.fds.length, v)
    checkLayouts(offer.regions, layouts)
    mapShared(env, offer.regions, bulk.fds, mapped, consumed)
    for (const s of offer.sockets) {
      try {
        wrapped.set(s.name, prewrap(bulk.fds[s.fd]))
      } catch (err) {
        throw protocolError(`offered socket '${s.name}' is not a stream socket (${(err as Error).message})`)
      }
      consumed.add(s.fd)
    }
    // Still before the pause: their first touches while we serve would each take a page fault. Bounded
    // (a fill goes at 0.12 to 0.18 s a GiB): PREPARED must reach the predecessor well within its deadline.
    fill.add(Object.values(mapped))
    await fill.settled(PREPARE_FILL_MS)
    return offer.history
  } finally {
    closeFds(env, bulk.fds.filter((_, i) => !consumed.has(i)))
    for (const [name, buf] of Object.entries(mapped)) out.set(name, buf)
  }
}

/** Validates STATE and takes ownership of its fds: handles and mappings, the rest closed. */
async function adopt (env: Env, ch: HandoffChannel, body: unknown, fds: number[], offered: Map<string, ArrayBuffer>, wrapped: Map<string, net.Socket>, v: number, layouts: Record<string, LayoutSpec>, testPoint: Point): Promise<Omit<Inheritance, 'history' | 'point' | 'key' | 'side' | 'fill'>> {
  const gate = new SuccessorGate()
  const regions: Record<string, ArrayBuffer> = {}
  // fd indices whose ownership moved on (to a handle, or to a mapping); every other received fd is closed here.
  const taken = new Set<number>()
  try {
    const state = parseState(body, fds.length, v)
    checkLayouts(state.regions, layouts)
    takeOffered(env, state.regions, offered, regions)
    const handles: Record<string, Handle> = {}
    for (const h of state.handles) {
      const socket = h.offered === true ? wrapped.get(h.name) : undefined
      if (h.offered === true && socket === undefined) throw protocolError(`handle '${h.name}' is said to be offered, and no socket of that name was`)
      if (socket !== undefined) wrapped.delete(h.name)
      else taken.add(h.fd)
      handles[h.name] = inheritedHandle(h.kind, socket ?? fds[h.fd], Buffer.from(h.pending, 'base64'), h.info, gate, h.draining === true ? h.name : undefined, env)
    }
    // Offered connections that STATE leaves out closed before the pause (or were not exported): our dups go.
    for (const socket of wrapped.values()) socket.destroy()
    wrapped.clear()
    mapShared(env, state.regions, fds, regions, taken)
    closeFds(env, fds.filter((_, i) => !taken.has(i)))
    fds.forEach((_, i) => taken.add(i))
    const paths = await receiveGifts(env, ch, state.regions, regions)
    const inherited: Inherited = { regions, handles, meta: state.meta, from: state.from, layouts: Object.fromEntries(state.regions.map((r) => [r.name, r.layout])) }
    const marks: Partial<Marks> = { adopted: env.now() }
    await testPoint('successor:state-received')
    return { ch, v, state, inherited, gate, paths, marks }
  } catch (err) {
    closeFds(env, fds.filter((_, i) => !taken.has(i)))
    gate.abort()
    releaseAll(env, regions)
    throw err
  }
}

/** Waits up to `ms` for a process to be gone. */
export async function gone (env: Env, pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (env.isAlive(pid)) {
    if (Date.now() > until) return false
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  return true
}

/**
 * READY, then COMMIT. Resolves with how the commit happened: 'commit' from the predecessor, or
 * 'takeover' when the predecessor died after STATE (it can no longer serve, so we own everything).
 */
export async function commit (env: Env, inh: Inheritance, timeoutMs: number): Promise<'commit' | 'takeover'> {
  const { ch } = inh
  const pid = inh.state.from.pid
  try {
    await inh.point('successor:before-ready')
    if (ch.closed) throw new PagegiftError('ERR_PAGEGIFT_PEER_CLOSED', 'handoff channel closed before READY')
    inh.marks.ready = env.now()
    await ch.send(msg.ready(inh.v))
    await inh.point('successor:ready-sent')
    const r = await ch.recv({ timeoutMs })
    closeFds(env, r.fds)
    const reply = parseCommitReply(r.msg, inh.v)
    if (reply.t === 'abort') throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_ABORTED', `The predecessor rolled back: ${reply.reason} [${reply.code}]`)
    Object.assign(inh.marks, reply.at)
    return 'commit'
  } catch (err) {
    if (isPeerGone(err) && await gone(env, pid, 2000)) return 'takeover'
    throw err
  }
}

/** Gives everything received back: nothing was served, so the predecessor finds it all as it left it. */
function abandon (env: Env, inh: Inheritance): void {
  inh.fill.pause()
  inh.gate.abort()
  releaseAll(env, inh.inherited.regions)
  inh.ch.close()
  void inh.side?.close()
  inh.side = null
}

/**
 * READY, COMMIT, then SERVING before the gate opens: until the predecessor has SERVING it keeps
 * every handle, and resumes if we die here; so the gate opens only once SERVING went out (or the
 * predecessor is gone, and nobody else can serve). `serving` runs as soon as the gate has opened
 * (the app's onServing functions). Returns this generation's history record; on a failure
 * everything is given back before it throws.
 */
export async function takeOver (env: Env, inh: Inheritance, timeoutMs: number, me: { generation: number, version: string }, serving: () => void = () => {}): Promise<HandoffRecord> {
  let how: 'commit' | 'takeover'
  try {
    how = await commit(env, inh, timeoutMs)
  } catch (err) {
    abandon(env, inh)
    throw err
  }
  const servingAt = env.now()
  if (how === 'commit') {
    await inh.point('successor:committed')
    const marks = inh.v >= 2 ? marksWire(inh.marks, SERVING_MARKS) : undefined
    const sent = await inh.ch.send(msg.serving(inh.v, servingAt, marks)).then(() => true, () => false)
    if (!sent && !await gone(env, inh.state.from.pid, 2000)) {
      abandon(env, inh)
      throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_ABORTED', `The predecessor (pid ${inh.state.from.pid}) did not get SERVING after COMMIT, so it serves on: nothing was taken over`)
    }
  }
  inh.gate.open()
  const openAt = env.now()
  serving()
  // The clients' requests first: their reads start in the loop's next poll, and nothing below (the
  // fill, the drain, this record, the rest of ready()) need run before it. This is also where a
  // process first runs setImmediate(), which prime() rehearses with the rest of takeOver().
  await afterNextPoll()
  // The fill paused for the pause; regions that came only with STATE join it.
  inh.fill.add(inh.state.regions.filter((r) => r.mode === 'share').map((r) => inh.inherited.regions[r.name]))
  inh.fill.resume()
  await inh.point('successor:serving')
  if (how === 'commit') void awaitDrained(env, inh, timeoutMs)
  else stopDraining(inh)
  const st = inh.state
  const sinceStop = Number(servingAt - BigInt(st.stoppedAt)) / 1e6
  return {
    generation: me.generation,
    fromPid: st.from.pid,
    toPid: env.pid,
    version: me.version,
    at: new Date().toISOString(),
    downtimeMs: sinceStop,
    // Stopped serving to COMMIT, here as received (the predecessor's record has it as sent).
    pauseMs: sinceStop,
    bytes: st.regions.reduce((n, r) => n + r.byteLength, 0),
    regions: st.regions.map((r) => ({ name: r.name, bytes: r.byteLength, path: inh.paths.get(r.name) ?? 'share' })),
    handles: st.handles.length,
    phases: phasesOf({ ...inh.marks, stopped: BigInt(st.stoppedAt), serving: servingAt, open: openAt }),
    stoppedAt: st.stoppedAt,
  }
}

/**
 * Resolves after the event loop's next poll phase: an immediate queued from the check phase runs in
 * the next loop iteration's, after that iteration polled (and read what the sockets hold).
 */
async function afterNextPoll (): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)))
}

/** Connections whose output the predecessor still flushes: our writes to each wait for its DRAINED. */
async function awaitDrained (env: Env, inh: Inheritance, timeoutMs: number): Promise<void> {
  try {
    while (inh.gate.draining.length > 0) {
      const r = await inh.ch.recv({ timeoutMs: timeoutMs + 2000 })
      closeFds(env, r.fds)
      const d = parseDrained(r.msg, inh.v)
      inh.gate.drained(d.handle, d.ok)
    }
  } catch {
  } finally {
    stopDraining(inh)
  }
}

/** Connections that never drained lost part of their output: they are closed rather than corrupted. */
function stopDraining (inh: Inheritance): void {
  for (const name of inh.gate.draining) inh.gate.drained(name, false)
  inh.ch.close()
}
