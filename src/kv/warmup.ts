/**
 * Every generation starts hot. Before it serves (a first start) or before it asks for the handoff
 * (a successor), it runs a few thousand commands of every type through a throw-away server, over
 * real loopback sockets: the parser, the command table, each type's code, the reactor and the reply
 * path get compiled, and the start-up garbage is collected, before any client waits.
 *
 * Cold, a fresh process ran its first few hundred milliseconds of load at a tenth of its speed (2–7
 * ms event-loop turns for 50 requests, against 0.1 ms warm): redis-benchmark's p99 in the first
 * run after a start was 2–3x Redis's. `PAGEGIFT_KV_WARMUP=0` skips it.
 */
import net from 'node:net'
import { encode } from './client.ts'
import { KvServer } from './server.ts'
import { Store } from './store.ts'

/** The commands one warm-up client sends, one at a time (request/response, as most clients do). */
function commands (id: number, n: number): string[][] {
  const cmds: string[][] = []
  for (let i = 0; i < n; i++) {
    const k = `warm:${id}:${i % 50}`
    const v = `value-${i}`
    switch (i % 12) {
      case 0: cmds.push(['SET', k, v]); break
      case 1: cmds.push(['GET', k]); break
      case 2: cmds.push(['INCR', `n:${id}`]); break
      case 3: cmds.push(['LPUSH', `l:${id}`, v]); break
      case 4: cmds.push(['RPUSH', `l:${id}`, v]); break
      case 5: cmds.push(i % 24 === 5 ? ['LPOP', `l:${id}`] : ['LRANGE', `l:${id}`, '0', '99']); break
      case 6: cmds.push(['SADD', `s:${id}`, v]); break
      case 7: cmds.push(i % 24 === 7 ? ['SPOP', `s:${id}`] : ['SISMEMBER', `s:${id}`, v]); break
      case 8: cmds.push(['HSET', `h:${id}`, `f${i % 20}`, v]); break
      case 9: cmds.push(['ZADD', `z:${id}`, String(i % 17), `m:${i}`]); break
      case 10: cmds.push(i % 24 === 10 ? ['ZPOPMIN', `z:${id}`] : ['ZRANGE', `z:${id}`, '0', '9']); break
      default: cmds.push(['MSET', k, v, `${k}:b`, v], ['EXPIRE', k, '100'], ['DEL', `${k}:b`])
    }
  }
  return cmds
}

/** Sends `cmds` one at a time, each after the answer to the one before (any read counts as the answer). */
async function talk (port: number, cmds: string[][]): Promise<void> {
  const s = net.connect({ port, host: '127.0.0.1' })
  s.setNoDelay(true)
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  // A reset arrives as 'error' then 'close': the close ends the talk.
  s.on('error', () => {})
  let closed = false
  let answered = (): void => {}
  s.on('data', () => answered())
  s.on('close', () => { closed = true; answered() })
  try {
    for (const cmd of cmds) {
      if (closed) throw new Error('pagegift-kv warm-up: the warm-up server closed a connection')
      const answer = new Promise<void>((resolve) => { answered = resolve })
      s.write(encode([cmd]))
      await answer
    }
  } finally {
    s.destroy()
  }
}

export async function warmUp (clients = 8, perClient = 300): Promise<void> {
  if (process.env.PAGEGIFT_KV_WARMUP === '0') return
  const server = new KvServer(new Store({ segmentSize: 1024 * 1024, initialSlots: 1024 }))
  try {
    // An exclusive loopback port of its own: the real listeners are not open (or not ours) yet.
    const port = await server.listen(0, ['127.0.0.1'])
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref())
    await Promise.race([Promise.all(Array.from({ length: clients }, async (_, id) => await talk(port, commands(id, perClient)))), deadline])
  } catch (err) {
    // Best effort: a start is only slower for it.
    process.stderr.write(`pagegift-kv: warm-up skipped: ${(err as Error).message}\n`)
  } finally {
    await server.close()
    server.flush()
  }
  await new Promise((resolve) => setTimeout(resolve, 20))
}
