/**
 * `prime()`: runs the handoff's critical path once in this process, both sides, over a channel
 * pair in memory, with one connection on an abstract Unix socket (no file, no port) for the
 * socket export and adopt paths. A Generation is built but never listens: its contributors
 * and watchers run the rehearsal's quiesce and events. A fresh process otherwise compiles
 * that code (V8 compiles functions lazily, at their first call) in the middle of its first and only
 * handoff, inside the pause. join() calls it unless told not to (`prime: false`). See
 * docs/handoff.md for what it costs and what it saves.
 */
import net from 'node:net'
import { channelPair } from '../channel.ts'
import { alloc, pageSize, release } from '../pages.ts'
import { Contributors } from './contributors.ts'
import { defaultEnv } from './env.ts'
import { Generation } from './generation.ts'
import { adoptSocket, discardHandle, exportServer, exportSocket, inheritedHandle, releaseHandle, resumeHandle, wireFd, type Handle } from './handles.ts'
import { SuccessorGate } from './gate.ts'
import { handOff, type HandoffJob } from './predecessor.ts'
import { parseFirst, PROTOCOL_VERSION } from './protocol.ts'
import { inherit, takeOver } from './successor.ts'
import { Watchers } from './watchers.ts'

let primed: Promise<boolean> | null = null

/**
 * One more rehearsal, for a successor about to say PREPARED: its code for STATE (and the rest of
 * the pause) runs hot when STATE comes, a millisecond or so later. inherit() bounds it and ignores
 * its failure (successor.ts, warmUp).
 */
export async function rewarm (): Promise<void> {
  await run(false)
}

/** The rehearsal passes no test point: a test's fault belongs to the real handoff. */
const noPoint = async (): Promise<void> => {}

/**
 * Primes once per process; later calls share the first. Resolves true if the rehearsal went through;
 * false if it failed, which is harmless (a real handoff reports its own errors).
 */
export async function prime (): Promise<boolean> {
  primed ??= rehearse().then(() => true, () => false)
  return await primed
}

/**
 * The whole rehearsal runs REHEARSALS times: run once, it left the code a handoff runs once
 * (parsing STATE, the READY and COMMIT turns) with little type feedback. Handoff bench (1 GiB, 8
 * clients, 20 handoffs, A/B twice): client gap median 5.32 / 6.05 ms against 6.78 / 6.84 ms, the
 * COMMIT phase 0.30 / 0.36 against 0.61 / 0.57 ms.
 */
const REHEARSALS = 6

async function rehearse (): Promise<void> {
  for (let i = 0; i < REHEARSALS; i++) await run(i === 0)
}

/** A listener on an abstract Unix socket (nothing on disk) and one connection to it. */
async function loopback (): Promise<{ server: net.Server, client: net.Socket, accepted: net.Socket }> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(`\0pagegift-prime-${process.pid}`, resolve) })
  const client = net.connect(server.address() as string)
  const accepted = await new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  client.write('x')
  await new Promise((resolve) => accepted.once('readable', resolve))
  return { server, client, accepted }
}

/**
 * A Generation's own code on the handoff path (built, given contributors, asked its status), never
 * listening. A successor's app calls ready() inside the pause, where its first call would compile
 * it (V8 compiles a whole function at its first call, about 85 µs for this one here): it is called
 * once on the closed rehearsal Generation, where it refuses at its first line.
 */
async function rehearseGeneration (): Promise<void> {
  const g = new Generation('\0pagegift-prime', defaultEnv, { version: 'prime', exitOnHandoff: false }, null)
  g.offerRegions(() => ({})).offerSockets(() => ({})).onServing(() => {}).onHandoff(() => ({})).on('resumed', () => {}).on('handedOff', () => {})
  g.status()
  await g.close()
  await g.ready().catch(() => {})
}

/** How often warmPerConnection runs the predecessor's export, and the successor's wrap and adopt. */
const EXPORT_ROUNDS = 128
const ADOPT_ROUNDS = 32

/**
 * A handoff runs its per-connection steps once per connection, inside the pause: 58 times in a
 * pagegift-kv upgrade under redis-benchmark. Run a handful of times before, they are still in V8's
 * interpreter with little type feedback: in one process, exporting 8 connections took 1.95 ms the
 * first time, 0.64 ms the third and about 0.2 ms from the hundredth on. So the export runs here
 * EXPORT_ROUNDS times on the rehearsal's own connection, each undone at once (a rollback's resume),
 * and the successor's wrap and adopt ADOPT_ROUNDS times over dups of it, each dropped before it
 * reads. The connection is left as it was: its buffered byte goes back into its stream.
 */
function warmPerConnection (socket: net.Socket): void {
  for (let i = 0; i < EXPORT_ROUNDS; i++) resumeHandle(exportSocket(socket))
  for (let i = 0; i < ADOPT_ROUNDS; i++) {
    const exported = exportSocket(socket)
    const r = rehearsal({ conn: exported })
    const { socket: copy } = adoptSocket(r.handles.conn)
    r.commit()
    copy.destroy()
    resumeHandle(exported)
  }
}

/** One rehearsal; `warm`: run the per-connection steps many times over first (warmPerConnection). */
async function run (warm: boolean): Promise<void> {
  const [a, b] = channelPair()
  const region = alloc(pageSize)
  let received: Record<string, ArrayBuffer> = {}
  const { server, client, accepted } = await loopback()
  const adopted: net.Socket[] = []
  const contributors = new Contributors()
  const watchers = new Watchers(defaultEnv)
  try {
    if (warm) warmPerConnection(accepted)
    // A region that is not giftable takes the gift ladder, as a real one would. No listening
    // socket: exporting one and listening on the kept fd here left every later request of the
    // process's own server 10 to 25% dearer in CPU (measured: wrapped against plain node:http,
    // both under the same load at the same time). adoptServer is small and compiles in the real
    // handoff; exportServer's first run cost 0.2-0.3 ms of the quiesce (it and its three helpers
    // compiled there, V8's function log), so it runs below on the loopback listener, whose kept
    // dup is closed at once: nothing ever listens on it.
    contributors.addQuiescer(() => ({ regions: { offered: region, copied: new Uint8Array(16) }, handles: { conn: exportSocket(accepted) }, meta: { prime: true } }))
    contributors.addOfferer(() => ({ offered: region }))
    // The connection is offered too, so the successor's wrapping before the pause runs here once.
    contributors.addSocketOfferer(() => ({ conn: accepted }))
    const job: HandoffJob = {
      hello: { t: 'hello', v: 1, max: PROTOCOL_VERSION, pid: process.pid, version: 'prime' },
      v: PROTOCOL_VERSION,
      generation: 1,
      version: 'prime',
      timeoutMs: 5000,
      pauseBudgetMs: 5000,
      layouts: { offered: 1 },
      history: [],
      offer: () => contributors.offer(),
      offerSockets: () => contributors.offerSockets(),
      quiesce: async (successor) => await contributors.quiesce(successor),
      fenced: () => watchers.fenced,
      event: (e) => watchers.broadcast(e),
      point: noPoint,
    }
    const inheriting = inherit(defaultEnv, b, { version: 'prime', key: null, layouts: { offered: { version: 1 } } }, 5000, noPoint)
    parseFirst((await a.recv({ timeoutMs: 5000 })).msg)
    const handing = handOff(defaultEnv, a, job)
    const inh = await inheriting
    received = inh.inherited.regions
    adopted.push(adoptSocket(inh.inherited.handles.conn).socket)
    await takeOver(defaultEnv, inh, 5000, { generation: 2, version: 'prime' })
    const result = await handing
    if (result.outcome !== 'committed') throw result.error
    await result.drain()
    await rehearseGeneration()
    releaseHandle(exportServer(server))
  } finally {
    a.close()
    b.close()
    for (const x of adopted) x.destroy()
    client.destroy()
    accepted.destroy()
    try { server.close() } catch {}
    for (const buf of [region, ...Object.values(received)]) { try { release(buf) } catch {} }
  }
}

/** What `rehearsal()` gives: handles to adopt as a successor would, and the commit that lets them run. */
export interface Rehearsal {
  handles: Record<string, Handle>
  /** The commit point: adopted handles start reading (and listening); handles nobody adopted are closed. */
  commit: () => void
}

/**
 * An app's own adoption rehearsal, for its warm-up: a successor-side copy of each handle this
 * process exported, over a dup of its fd, behind a gate of its own. prime() runs the library's
 * side of a handoff; this lets an app run its side too (its exports, its adopt code, on its own
 * connections) before a real handoff, where that code would otherwise be parsed, compiled and run
 * cold inside the pause. Adopt the handles, call `commit()`, then close what was adopted. The
 * exported originals are untouched: resume or release them, or close what they came from.
 */
export function rehearsal (exported: Record<string, Handle>): Rehearsal {
  const gate = new SuccessorGate()
  const handles: Record<string, Handle> = {}
  for (const [name, h] of Object.entries(exported)) {
    let fd: number
    // A connection that closed before its export has no fd: it is left out, as a handoff leaves it out.
    try { fd = wireFd(h) } catch { continue }
    handles[name] = inheritedHandle(h.kind, defaultEnv.dup(fd), h.pending, { ...h.info }, gate)
  }
  return {
    handles,
    commit: () => {
      gate.open()
      for (const h of Object.values(handles)) discardHandle(h)
    },
  }
}
