/**
 * A dry run of a whole handoff inside this process, over a local channel pair, once per process and
 * before the real one. The first run of any code path pays for lazy compilation and cold caches;
 * this moves that cost out of the critical section (it costs a few ms at join() and ready()).
 */
import net from 'node:net'
import { channelPair } from '../channel.ts'
import { alloc, pageSize, release } from '../pages.ts'
import { defaultEnv, type Env, type HandoffServer } from './env.ts'
import { Generation, kAccept } from './generation.ts'
import { adoptServer, adoptSocket, exportServer, exportSocket } from './handles.ts'
import { inherit } from './successor.ts'

let warmed: Promise<void> | null = null

/** A listener on 127.0.0.1 and one connection to it, to run the export and adopt paths on. */
async function loopback (): Promise<{ server: net.Server, client: net.Socket, accepted: net.Socket }> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const accepted = await new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  client.write('warm')
  await new Promise((resolve) => accepted.once('data', resolve))
  return { server, client, accepted }
}

/** A path that cannot exist, so that nothing on disk is ever touched by the dry run. */
const WARM_PATH = '/proc/self/pagegift-warm-up.sock'
const idleServer: HandoffServer = { on: () => idleServer, close: async () => {} }

/** Both sides, as two Generations joined by a channel pair; the socket path is never touched. */
async function dryRun (): Promise<void> {
  const env: Env = { ...defaultEnv, step: () => {}, settle: async () => {}, listen: async () => idleServer }
  const region = alloc(pageSize)
  const { server, client, accepted } = await loopback()
  const [a, b] = channelPair()
  const adopted: (net.Server | net.Socket)[] = []
  let inherited: Record<string, ArrayBuffer> = {}
  try {
    const predecessor = new Generation(WARM_PATH, env, { version: 'warm-up', exitOnHandoff: false }, null)
    predecessor.offerRegions(() => ({ offered: region }))
    predecessor.onHandoff(() => ({ regions: { offered: region, plain: new Uint8Array(16) }, handles: { server: exportServer(server), socket: exportSocket(accepted) }, meta: { warm: true } }))
    await predecessor.ready()
    const handedOff = predecessor[kAccept](a)
    const inh = await inherit(env, b, 'warm-up', 5000)
    inherited = inh.inherited.regions
    const successor = new Generation(WARM_PATH, env, { version: 'warm-up', exitOnHandoff: false }, inh)
    adopted.push(adoptServer(inh.inherited.handles.server), adoptSocket(inh.inherited.handles.socket).socket)
    await successor.ready()
    await handedOff
    successor.status()
  } finally {
    a.close()
    b.close()
    for (const buf of [region, ...Object.values(inherited)]) { try { release(buf) } catch {} }
    for (const x of adopted) x instanceof net.Server ? x.close() : x.destroy()
    client.destroy()
    accepted.destroy()
    server.close()
  }
}

let running = false

/** Runs the dry run once per process; failures are ignored (the real handoff reports its own). */
export async function warmUp (): Promise<void> {
  // The dry run's own Generations call warmUp() from ready(): they must not wait for themselves.
  if (running) return
  warmed ??= (async () => {
    running = true
    try { await dryRun() } catch {} finally { running = false }
  })()
  await warmed
}
