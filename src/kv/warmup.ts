/**
 * Every generation starts hot. Before it serves (a first start) or before it asks for the handoff
 * (a successor), it runs a few thousand commands of every type through a throw-away server, over
 * real loopback sockets: the parser, the command table, each type's code, the reactor and the reply
 * path get compiled, and the start-up garbage is collected, before any client waits.
 *
 * Cold, a fresh process ran its first few hundred milliseconds of load at a tenth of its speed (2–7
 * ms event-loop turns for 50 requests, against 0.1 ms warm): redis-benchmark's p99 in the first
 * run after a start was 2–3x Redis's. `PAGEGIFT_KV_WARMUP=0` skips it.
 *
 * Then each client sends more of the same, PIPELINE commands a write. One at a time, 2,400
 * commands left the command path in V8's baseline code (perf showed `^` frames, not `*`, in a
 * successor's first answers after a live upgrade: the first turn of 58 requests took ~2 ms to read
 * and ~4 ms to answer). Pipelined, the per-command code runs 8 × 1,800 more times for ~0.3 s of
 * start-up, and is optimized before any client waits.
 *
 * Then the live upgrade itself is rehearsed on these clients (rehearseHandover), the last server
 * serves them some more, and they leave. The rare paths (a command cut across reads, a client
 * leaving) come first of all: with --trace-deopt, a path first met after the bulk (a client's end of
 * stream in a successor's first turn, say) deoptimized the reactor's loop and, through code
 * dependencies, the whole command path with it.
 */
import net from 'node:net'
import { encode } from './client.ts'
import { KvServer } from './server.ts'
import { Store } from './store.ts'
import { Databases, DEFAULT_DATABASES } from './databases.ts'
import type { Allocator } from './segments.ts'
import { handoff } from '../index.ts'
import { adoptClients, exportClientHandles } from './handover.ts'
import { within } from '../within.ts'

/** Times the warm-up's clients move from one throw-away server to the next (see rehearseHandover). */
const REHEARSALS = 3

/** The warm-up store's segment size: small, since it holds little. */
const SEGMENT = 1024 * 1024

/** Commands each client sends, pipelined, to the server that adopted it last. */
const AFTER_REHEARSAL = 600

/** Commands a write in the warm-up's second, pipelined, part. */
const PIPELINE = 20

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

/**
 * Sends `cmds` `depth` at a time on `s`, each write after the answer to the one before (any read
 * counts as the answer), each cut in two if `split`. The connection stays open.
 */
async function talk (s: net.Socket, cmds: string[][], depth = 1, split = false): Promise<void> {
  // A reset arrives as 'error' (see connect) then 'close': the close ends the talk.
  let closed = s.destroyed
  let answered = (): void => {}
  s.on('data', () => answered())
  const onClose = (): void => { closed = true; answered() }
  s.on('close', onClose)
  try {
    for (let i = 0; i < cmds.length; i += depth) {
      if (closed) throw new Error('pagegift-kv warm-up: the warm-up server closed a connection')
      const answer = new Promise<void>((resolve) => { answered = resolve })
      const wire = encode(cmds.slice(i, i + depth))
      if (split) {
        // The batch arrives in two reads, cut inside a command: the parser's resume path.
        s.write(wire.subarray(0, wire.length >> 1))
        await new Promise((resolve) => setTimeout(resolve, 1))
        s.write(wire.subarray(wire.length >> 1))
      } else {
        s.write(wire)
      }
      await answer
    }
  } finally {
    s.removeAllListeners('data')
    s.off('close', onClose)
  }
}

async function connect (port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1' })
  s.setNoDelay(true)
  try {
    await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  } catch (err) {
    s.destroy()
    throw err
  }
  s.on('error', () => {})
  return s
}

function copyRegion (allocator: Allocator, name: string, r: ArrayBuffer): ArrayBuffer {
  const copy = allocator.alloc(r.byteLength, name)
  new Uint8Array(copy).set(new Uint8Array(r))
  return copy
}

/**
 * The live upgrade's own paths, both sides, on the warm-up's store and connections. Each round
 * freezes a server and exports its store and clients, as a predecessor's quiesce does; a fresh
 * server adopts a copy of the store and the clients over dups of their fds (handoff.rehearsal),
 * commits and thaws, as a successor does. Without it a process runs that code for the first time
 * inside the pause, as either side: perf put about half of the pause's CPU in parsing, compiling
 * and cold inline caches. Each server made joins `servers` (the caller closes them all).
 */
function rehearseHandover (servers: KvServer[]): void {
  for (let i = 0; i < REHEARSALS; i++) {
    const from = servers[servers.length - 1]
    from.freeze()
    const handles: Record<string, handoff.Handle> = {}
    // As many store regions as a handoff allows: every query buffer goes in the pack (a copy),
    // since both servers here would own a query buffer moved as a region of its own.
    const moved = exportClientHandles(from, Number.MAX_SAFE_INTEGER, handles)
    // The store's export and adoption too, over copies of its regions (each server owns its own memory).
    const { regions, meta } = from.dbs.exportState()
    const copies = Object.fromEntries(Object.entries(regions).map(([name, r]) => [name, copyRegion(from.allocator, name, r)]))
    const to = new KvServer(Databases.adopt(copies, { dbs: meta }, DEFAULT_DATABASES, { allocator: from.allocator, segmentSize: SEGMENT }))
    servers.push(to)
    const r = handoff.rehearsal(handles)
    try {
      adoptClients(to, r.handles, moved.clients, moved.regions)
    } finally {
      // Also closes any handle an adoption that failed left behind.
      r.commit()
    }
    to.thaw()
    // Each adopted client copied its share of the pack.
    if (moved.pack !== null) from.allocator.release(moved.pack)
    from.handoffPack = null
  }
}

/** What a warm-up did: the commands answered, and the clients the last rehearsal's server served. */
export interface WarmUpReport { commands: number, rehearsed: number }

export async function warmUp (clients = 8, perClient = 300, pipelined = 1800): Promise<WarmUpReport> {
  const report: WarmUpReport = { commands: 0, rehearsed: 0 }
  if (process.env.PAGEGIFT_KV_WARMUP === '0') return report
  const server = new KvServer(new Store({ segmentSize: SEGMENT, initialSlots: 1024 }))
  const servers = [server]
  const sockets: net.Socket[] = []
  const briefs: net.Socket[] = []
  try {
    // An exclusive loopback port of its own: the real listeners are not open (or not ours) yet.
    const port = await server.listen(0, ['127.0.0.1'])
    const talking = Promise.all(Array.from({ length: clients }, async (_, id) => {
      // The rare paths first (commands cut across reads, a client leaving), so that the code
      // optimized by the bulk that follows has seen them: met only later, they deoptimized the
      // reactor's loop and the command path with it (at the warm-up's end, or in a successor).
      const brief = await connect(port)
      briefs.push(brief)
      await talk(brief, commands(id, 4 * PIPELINE), PIPELINE, true)
      brief.end()
      const s = await connect(port)
      sockets.push(s)
      await talk(s, commands(id, perClient))
      await talk(s, commands(id, pipelined), PIPELINE)
    }))
    const talked = await within(talking.then(() => true), 5000, false)
    report.commands = server.commands
    if (!talked) return report
    rehearseHandover(servers)
    const last = servers.at(-1) as KvServer
    report.rehearsed = last.conns.size
    // Then serve on the adopted store: its objects are not the ones the command path was compiled against.
    await within(Promise.all(sockets.map(async (s, id) => await talk(s, commands(id, AFTER_REHEARSAL), PIPELINE))), 2000, undefined)
    report.commands += last.commands
    // And the clients leave: the reactor's end-of-stream path, which a real successor meets too.
    for (const s of sockets) s.end()
    const gone = Date.now() + 1000
    while (last.conns.size > 0 && Date.now() < gone) await new Promise((resolve) => setTimeout(resolve, 2))
  } catch (err) {
    // Best effort: a start is only slower for it.
    process.stderr.write(`pagegift-kv: warm-up skipped: ${(err as Error).message}\n`)
  } finally {
    for (const s of [...briefs, ...sockets]) s.destroy()
    for (const s of servers) {
      await s.close()
      s.flush()
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 20))
  return report
}
