/**
 * A dry run of a whole handoff inside this process, over a local channel pair, once per process and
 * before the real one. The first run of any code path pays for lazy compilation and cold caches;
 * this moves that cost out of the critical section (it costs a few ms at join() and ready()).
 */
import net from 'node:net'
import { channelPair } from '../channel.ts'
import { alloc, pageSize, release } from '../pages.ts'
import { defaultEnv, type Env } from './env.ts'
import { adoptServer, adoptSocket, exportServer, exportSocket } from './handles.ts'
import { onConnection, type Serving } from './predecessor.ts'
import { msg } from './protocol.ts'
import { commit, inherit } from './successor.ts'

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

async function dryRun (): Promise<void> {
  const env: Env = { ...defaultEnv, step: () => {}, settle: async () => {} }
  const region = alloc(pageSize)
  const { server, client, accepted } = await loopback()
  const [a, b] = channelPair()
  const adopted: (net.Server | net.Socket)[] = []
  const serving: Serving = {
    env,
    generation: 1,
    version: 'warm-up',
    timeoutMs: 5000,
    helloTimeoutMs: 5000,
    handler: () => ({ regions: { offered: region, plain: new Uint8Array(16) }, handles: { server: exportServer(server), socket: exportSocket(accepted) }, meta: { warm: true } }),
    offer: () => ({ offered: region }),
    busyWith: null,
    history: [],
    status: () => { throw new Error('no status during warm-up') },
    broadcast: () => {},
    addWatcher: () => {},
    unlisten: async () => {},
    committed: () => {},
    resumed: () => {},
  }
  try {
    const predecessor = onConnection(serving, a)
    const inh = await inherit(env, b, 'warm-up', 5000)
    adopted.push(adoptServer(inh.inherited.handles.server), adoptSocket(inh.inherited.handles.socket).socket)
    await commit(env, inh, 5000)
    inh.gate.open()
    await b.send(msg.serving(env.now()))
    await predecessor
    for (const buf of Object.values(inh.inherited.regions)) release(buf)
  } finally {
    a.close()
    b.close()
    release(region)
    for (const x of adopted) x instanceof net.Server ? x.close() : x.destroy()
    client.destroy()
    accepted.destroy()
    server.close()
  }
}

/** Runs the dry run once per process; failures are ignored (the real handoff reports its own). */
export async function warmUp (): Promise<void> {
  warmed ??= dryRun().catch(() => {})
  await warmed
}
