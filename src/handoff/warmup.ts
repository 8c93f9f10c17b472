/**
 * A dry run of a whole handoff inside this process, over a local channel pair, once per process and
 * before the real one. The first run of any code path pays for lazy compilation and cold caches;
 * this moves that cost out of the critical section (it costs a few ms at join() and ready()).
 */
import { channelPair } from '../channel.ts'
import { alloc, pageSize, release } from '../pages.ts'
import { defaultEnv, type Env } from './env.ts'
import { onConnection, type Serving } from './predecessor.ts'
import { msg } from './protocol.ts'
import { commit, inherit } from './successor.ts'

let warmed: Promise<void> | null = null

async function dryRun (): Promise<void> {
  const env: Env = { ...defaultEnv, step: () => {}, settle: async () => {} }
  const region = alloc(pageSize)
  const [a, b] = channelPair()
  const serving: Serving = {
    env,
    generation: 1,
    version: 'warm-up',
    timeoutMs: 5000,
    helloTimeoutMs: 5000,
    handler: () => ({ regions: { offered: region, plain: new Uint8Array(16) }, handles: {}, meta: { warm: true } }),
    offer: () => ({ offered: region }),
    busyWith: null,
    history: [],
    status: () => { throw new Error('no status during warm-up') },
    broadcast: () => {},
    addWatcher: () => {},
    unlisten: async () => {},
    relisten: async () => {},
    committed: () => {},
    resumed: () => {},
  }
  try {
    const predecessor = onConnection(serving, a)
    const inh = await inherit(env, b, 'warm-up', 5000)
    await commit(env, inh, 5000)
    inh.gate.open()
    await b.send(msg.serving(env.now()))
    await predecessor
    for (const buf of Object.values(inh.inherited.regions)) release(buf)
  } finally {
    a.close()
    b.close()
    release(region)
  }
}

/** Runs the dry run once per process; failures are ignored (the real handoff reports its own). */
export async function warmUp (): Promise<void> {
  warmed ??= dryRun().catch(() => {})
  await warmed
}
