/**
 * pagegift/http: live upgrades for an existing HTTP server (node:http, Express, Fastify, https,
 * http2). One call; the successor takes over the listener and every idle keep-alive connection,
 * and connections busy at the handoff finish their request here and move afterwards.
 * See docs/http.md.
 */
import net from 'node:net'
import tls from 'node:tls'
import { handoff } from '../index.ts'
import { testFlag, testPoint } from '../testhook.ts'
import { Tracker } from './conns.ts'
import { LiveHttp, type DrainReport, type WebSocketServerLike } from './live.ts'
import { movesPath, receiveMoves } from './moves.ts'
import { notifySystemd } from './systemd.ts'

export type { DrainReport, WebSocketServerLike }
export { notifySystemd }

export interface LiveHttpOptions {
  /** The handoff socket path (the one `pagegift upgrade` and `pagegift status` take). */
  socket: string
  /** Where generation 1 listens: `{ port, host? }` or `{ path }`. Successors adopt its socket. */
  listen: { port: number, host?: string } | { path: string }
  /** Shown by `pagegift status`. */
  version?: string
  /** How long connections busy at the handoff may take to reach a request boundary here. Default 30 s. */
  drainTimeoutMs?: number
  /** When whatever still runs here is cut off. Default 2x drainTimeoutMs. */
  hardCapMs?: number
  /** `ws` servers whose clients get close code 1012 (Service Restart) at the handoff. */
  websockets?: WebSocketServerLike | WebSocketServerLike[]
  /** Exit once drained (after the `handedOff` listeners ran). Default true. */
  exitOnDrain?: boolean
  /** Passed to the handoff: its HELLO-to-READY budget. */
  timeoutMs?: number
  /** Passed to the handoff: how long the service stays quiesced waiting for READY before it rolls back (default 500 ms). */
  pauseBudgetMs?: number
}

const reports = new WeakMap<handoff.Generation, LiveHttp>()

function positive (x: unknown, what: string, dflt: number): number {
  if (x === undefined) return dflt
  if (typeof x !== 'number' || !(x > 0) || x > 2 ** 31 - 1) throw new RangeError(`The "opts.${what}" argument must be a positive number of ms. Received ${String(x)}`)
  return x
}

function checkListen (l: unknown): LiveHttpOptions['listen'] {
  const o = l as { port?: unknown, host?: unknown, path?: unknown } | null
  if (o !== null && typeof o === 'object' && typeof o.path === 'string' && o.path.length > 0) return { path: o.path }
  if (o !== null && typeof o === 'object' && Number.isInteger(o.port) && (o.port as number) >= 0 && (o.port as number) < 65536 && (o.host === undefined || typeof o.host === 'string')) {
    return { port: o.port as number, host: o.host as string | undefined }
  }
  throw new TypeError('The "opts.listen" argument must be { port, host? } or { path }')
}

/**
 * Joins the service at `opts.socket` with `server`: generation 1 listens on `opts.listen`; a
 * successor adopts the listener and the connections its predecessor hands over. Resolves once the
 * server is serving, to the handoff Generation: add your own regions and meta with
 * `gen.offerRegions` / `gen.onHandoff` (they add up with what liveHttp hands over).
 */
export async function liveHttp (server: net.Server, opts: LiveHttpOptions): Promise<handoff.Generation> {
  if (!(server instanceof net.Server)) throw new TypeError('The "server" argument must be an http.Server, https.Server or http2 server')
  if (server.listening) throw new TypeError('The "server" argument must not be listening yet: liveHttp listens (or adopts) for it')
  if (typeof opts !== 'object' || opts === null || typeof opts.socket !== 'string') throw new TypeError('The "opts.socket" argument must be the handoff socket path')
  const listen = checkListen(opts.listen)
  const drainTimeoutMs = positive(opts.drainTimeoutMs, 'drainTimeoutMs', 30_000)
  const websockets = opts.websockets === undefined ? [] : Array.isArray(opts.websockets) ? opts.websockets : [opts.websockets]
  const http2 = typeof (server as { updateSettings?: unknown }).updateSettings === 'function'
  // A TLS server cannot be exported (its sessions live in OpenSSL): a plain listener in front of it moves instead.
  const front = server instanceof tls.Server ? net.createServer((s) => server.emit('connection', s)) : server
  const tracker = new Tracker(server, http2 ? 'http2' : 'http1')
  await testPoint('http:start')
  const gen = await handoff.join(opts.socket, { version: opts.version, exitOnHandoff: false, timeoutMs: opts.timeoutMs, pauseBudgetMs: opts.pauseBudgetMs })
  const live = new LiveHttp(front, tracker, {
    socket: opts.socket, drainTimeoutMs, hardCapMs: positive(opts.hardCapMs, 'hardCapMs', 2 * drainTimeoutMs), websockets, exitOnDrain: opts.exitOnDrain ?? true,
  })
  const adopt = (socket: net.Socket, pending: Buffer): void => {
    if (pending.length > 0) socket.unshift(pending)
    server.emit('connection', socket)
  }
  if (gen.inherited !== null) await takeOver(gen, front, live, adopt, opts.socket, 2 * drainTimeoutMs + 10_000)
  else {
    await listenOn(front, listen)
    await gen.ready()
  }
  // Before the pause: every connection starts reporting its close while the service still serves.
  gen.offerRegions(() => { tracker.watch(); return {} })
  // Wrapped by the successor while we still serve: building a net.Socket costs it 30-50 µs each.
  gen.offerSockets(() => live.offer())
  gen.onHandoff((s) => live.quiesce(s.pid))
  gen.on('resumed', () => live.resumed())
  gen.on('handedOff', (info) => live.handedOff(info.toPid))
  reports.set(gen, live)
  notifySystemd(`READY=1\nMAINPID=${process.pid}\nSTATUS=generation ${gen.generation} serving`)
  return gen
}

/** Successor: adopt the listener and connections (held until the commit), then serve them. */
async function takeOver (gen: handoff.Generation, front: net.Server, live: LiveHttp, adopt: (s: net.Socket, p: Buffer) => void, socket: string, waitMs: number): Promise<void> {
  const inh = gen.inherited as handoff.Inherited
  await testPoint('http:joined')
  const conns: { socket: net.Socket, pending: Buffer }[] = []
  let listener = false
  for (const [name, h] of Object.entries(inh.handles)) {
    if (LiveHttp.isListener(name)) { handoff.adoptServer(h, front); listener = true }
    if (LiveHttp.isConn(name)) conns.push(handoff.adoptSocket(h))
  }
  if (!listener) throw Object.assign(new Error(`pagegift http: the generation at ${socket} handed over no HTTP listener (is it a liveHttp service?)`), { code: 'ERR_PAGEGIFT_HTTP_NO_LISTENER' })
  await testPoint('http:adopted')
  const moves = await receiveMoves(movesPath(socket, process.pid), inh.from.pid, adopt, waitMs)
  try {
    await testPoint('http:before-ready')
    await testPause()
    await gen.ready()
  } catch (err) {
    await moves.close()
    throw err
  }
  live.receiving(moves.done)
  // On a later turn: the app's code right after `await liveHttp()` runs before any request.
  setImmediate(() => { for (const c of conns) adopt(c.socket, c.pending) })
}

/** Tests hold the successor here (the predecessor is quiesced) to send bytes to paused connections. */
async function testPause (): Promise<void> {
  const ms = Number(testFlag('http:pause-ms') ?? 0)
  if (!(ms > 0)) return
  process.stderr.write('pagegift-test-point http:pause\n')
  await new Promise((resolve) => setTimeout(resolve, ms))
}

async function listenOn (server: net.Server, listen: LiveHttpOptions['listen']): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(listen, () => { server.off('error', reject); resolve() })
  })
}

/** Resolves when this generation, handed off, has moved or closed every connection (before it exits). */
export async function drained (gen: handoff.Generation): Promise<DrainReport> {
  const live = reports.get(gen)
  if (live === undefined) throw new TypeError('The "gen" argument must be a Generation returned by liveHttp()')
  return await live.drained
}
