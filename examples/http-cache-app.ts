/**
 * An HTTP service with a big in-process cache, run four ways by `npm run bench -- http`:
 *   MODE=pagegift  liveHttp() + attachMap(): upgrades keep the connections and the warm cache
 *   MODE=plain     server.listen(PORT): for a plain stop/start, and as a pm2 cluster-mode app
 *   MODE=cluster   a Node cluster primary with 2 plain workers; SIGHUP = rolling restart
 * APP=node|express. GET /k?i=N answers entry N of the cache (1 KiB); a miss "loads it from the
 * source" (1 ms) and caches it. CACHE_MB sizes the key space; the cache is filled at start only
 * while the file PREFILL_FILE exists (the bench removes it after the first start: restarts start cold).
 * WARM_UP=N: N requests to itself on a loopback port before serving (see warmUp()).
 */
import cluster from 'node:cluster'
import { existsSync } from 'node:fs'
import http from 'node:http'
import type net from 'node:net'
import { liveHttp } from '../src/http/index.ts'
import { attachMap, LiveMap } from '../src/map/index.ts'

const mode = process.env.MODE ?? 'plain'
const cacheMb = Number(process.env.CACHE_MB ?? 1024)
const keys = cacheMb * 1024
const port = Number(process.env.PORT ?? 8080)
const say = (e: Record<string, unknown>): void => { process.stdout.write(JSON.stringify({ ...e, pid: process.pid }) + '\n') }
const valueOf = (i: number): Buffer => Buffer.alloc(1024, `${i};`)

let cache: LiveMap | null = null

function handle (url: string, reply: (status: number, hit: boolean, body: Buffer) => void): void {
  const i = Number(url.slice(url.indexOf('=') + 1)) % keys
  // No cache yet (a request that arrives between listen and the map's creation): a miss.
  const hit = cache?.get(`k${i}`)
  if (hit !== undefined) return reply(200, true, hit)
  setTimeout(() => {
    const v = valueOf(i)
    cache?.set(`k${i}`, v)
    reply(200, false, v)
  }, 1)
}

async function makeServer (): Promise<net.Server> {
  const send = (res: http.ServerResponse) => (status: number, hit: boolean, body: Buffer): void => {
    res.statusCode = status
    res.setHeader('x-cache', hit ? 'hit' : 'miss')
    res.setHeader('x-pid', String(process.pid))
    res.end(body)
  }
  if (process.env.APP === 'express') {
    const express = (await import('express')).default
    const app = express()
    app.get('/k', (req, res) => handle(req.url, send(res)))
    return http.createServer(app)
  }
  return http.createServer((req, res) => handle(req.url ?? '/', send(res)))
}

/**
 * Runs `n` requests through the server on a loopback port before it serves anyone (8 keep-alive
 * connections, a small throwaway cache), so that V8 has compiled the request path by the time real
 * clients come: a process that starts cold serves its first thousands of requests several times
 * slower, and its compiler threads take CPU from it. Every mode does it (WARM_UP, set by the
 * bench), so every reload method starts the same way.
 */
async function warmUp (server: http.Server, n: number): Promise<void> {
  if (n <= 0) return
  const scratch = new LiveMap('warm-up', { maxBytes: 8 << 20 })
  cache = scratch
  // exclusive: in a cluster worker (pm2, MODE=cluster) a shared listen would tell the primary this
  // worker listens, and a rolling restart would stop the old worker before the new one really does.
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, resolve))
  const { port: p } = server.address() as net.AddressInfo
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
  const one = async (i: number): Promise<void> => {
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: p, path: `/k?i=${i % 64}`, agent, timeout: 10_000 }, (res) => { res.resume(); res.on('end', resolve) })
      req.on('error', reject)
      req.on('timeout', () => req.destroy(new Error('warm-up request timed out')))
    })
  }
  try {
    for (let i = 0; i < n; i += 8) await Promise.all(Array.from({ length: 8 }, async (_, j) => { await one(i + j) }))
  } finally {
    agent.destroy()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    cache = null
    scratch.close()
  }
}

function prefill (): void {
  if (process.env.PREFILL_FILE === undefined || !existsSync(process.env.PREFILL_FILE) || cache === null) return
  for (let i = cache.size; i < keys; i++) cache.set(`k${i}`, valueOf(i))
}

const warmUpRequests = Number(process.env.WARM_UP ?? 0)
const maxBytes = Math.ceil(cacheMb * 1.15) << 20
// 128 MiB segments keep a 1 GiB map to ~10 regions: each handoff record lists its regions, and
// `pagegift status` carries the last 32 records in one message of at most 64 KiB.
const segmentSize = 128 << 20

if (mode === 'cluster' && cluster.isPrimary) {
  cluster.setupPrimary({ execArgv: process.execArgv })
  const fork = async (): Promise<void> => { const w = cluster.fork({ MODE: 'plain' }); await new Promise((resolve) => w.once('listening', resolve)) }
  await Promise.all([fork(), fork()])
  say({ event: 'serving', mode })
  // Rolling restart: one worker at a time, the new one listening before the old one stops accepting.
  process.on('SIGHUP', () => void (async () => {
    for (const old of Object.values(cluster.workers ?? {})) {
      await fork()
      old?.disconnect()
    }
    say({ event: 'reloaded' })
  })())
} else if (mode === 'pagegift') {
  const server = await makeServer()
  await warmUp(server as http.Server, warmUpRequests)
  const gen = await liveHttp(server, { socket: process.env.SOCK as string, listen: { port, host: '127.0.0.1' }, drainTimeoutMs: 10_000 })
  cache = attachMap(gen, 'cache', { maxBytes, segmentSize })
  prefill()
  say({ event: 'serving', mode, generation: gen.generation, entries: cache.size })
} else {
  // In the same order as MODE=pagegift (server, listen, map, fill), so that the throughput
  // comparison differs in liveHttp alone.
  const server = await makeServer()
  await warmUp(server as http.Server, warmUpRequests)
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  cache = new LiveMap('cache', { maxBytes, segmentSize })
  prefill()
  say({ event: 'serving', mode, entries: cache.size })
  // Graceful: stop accepting, close idle keep-alive connections, let requests in flight finish.
  const stop = (): void => { server.close(() => process.exit(0)) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
