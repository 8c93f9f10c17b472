/**
 * The connections of one wrapped server, and the request boundary at which each may move.
 *
 * A connection is at a boundary when its last response has finished and left the process, and
 * Node's parser holds no bytes of a next request. Then reading stops (exportSocket), so whatever
 * the client sends from that instant waits in the kernel for whichever process reads it next.
 */
import type http from 'node:http'
import type net from 'node:net'
import tls from 'node:tls'
import { handoff } from '../index.ts'
import { resumeHandle } from '../handoff/handles.ts'

/** Node's HTTPParser: duration() is the age of the message being parsed, 0 between messages. */
interface Parser { duration (): number }
interface StreamHandle { fd?: number, writeQueueSize?: number }
interface SocketInternals { parser?: Parser | null, _httpMessage?: unknown, _handle?: StreamHandle | null }

/** Below this many entries the connection Set is not pruned. */
const PRUNE_MIN = 1024

const internalsOf = (s: net.Socket): SocketInternals => s as unknown as SocketInternals

/** 'http': plain HTTP/1 (it moves); 'tls': HTTP/1 over TLS (it drains here). */
export type ConnKind = 'http' | 'tls'

/** The next connection's id (see Conn.id). */
let nextId = 0

export class Conn {
  readonly socket: net.Socket
  readonly kind: ConnKind
  /** Its name on the handoff wire: the same when it is offered before a handoff and when it is exported in the pause. */
  readonly id = nextId++
  /** Exported to the handoff that is running (it resumes or releases it). */
  exported = false
  /** Stopped at a boundary after the quiesce, waiting for the commit (move) or a rollback (resume). */
  held: handoff.Handle | null = null
  /** Past the drain deadline: its responses say Connection: close, and it closes when idle. */
  closing = false
  /** Already counted in the drain report. */
  counted = false

  constructor (socket: net.Socket, kind: ConnKind) {
    this.socket = socket
    this.kind = kind
  }

  /** A response is being written or queued (pipelined requests queue behind `_httpMessage`). */
  get responding (): boolean {
    return internalsOf(this.socket)._httpMessage != null
  }

  /** True when this is no longer an HTTP/1 connection (a WebSocket or CONNECT took it over). */
  get upgraded (): boolean {
    return internalsOf(this.socket).parser == null && !this.socket.destroyed
  }

  /** At a request boundary, with nothing left to write: it may stop reading and move now. */
  idle (): boolean {
    const s = internalsOf(this.socket)
    const parser = s.parser
    if (this.socket.destroyed || parser == null) return false
    if (s._httpMessage != null) return false
    // duration() is 0 only between a message's end and the next one's first byte; a connection
    // that never sent a byte holds nothing either, though its parser's clock runs from the accept.
    if (this.socket.bytesRead > 0 && parser.duration() !== 0) return false
    return this.socket.writableLength === 0 && (s._handle?.writeQueueSize ?? 0) === 0
  }

  /** The connection's fd, while it has one. */
  get fd (): number {
    const fd = internalsOf(this.socket)._handle?.fd
    return typeof fd === 'number' ? fd : -1
  }

  /** Stops reading at the boundary (exportSocket); the handle carries what the stream had buffered. */
  export (): handoff.Handle {
    return handoff.exportSocket(this.socket)
  }

  /** export(), kept here until the commit (moved) or a rollback (resumed). */
  hold (): handoff.Handle {
    this.held = this.export()
    return this.held
  }

  /** Undoes hold(): the bytes it took out of the stream go back first, then reading starts again. */
  resume (): void {
    const held = this.held
    this.held = null
    if (held !== null) resumeHandle(held)
  }

  /** Past the deadline: responses not started yet say Connection: close; the rest close after. */
  closeAfterResponse (): void {
    this.closing = true
    const res = internalsOf(this.socket)._httpMessage as http.ServerResponse | null | undefined
    if (res != null && !res.headersSent) res.setHeader('Connection', 'close')
  }
}

/** An HTTP/2 session: it cannot move (HPACK and stream state live here), so it gets GOAWAY. */
export interface Session { close (): void, destroy (): void, closed: boolean, on (e: 'close', fn: () => void): unknown }

/**
 * The connections of a server, and a signal when a watched one may have reached a boundary.
 *
 * The steady state pays one Set entry per connection and nothing per request: no 'request' or
 * 'close' listener. Closed connections are pruned from the Set as it grows; 'close' listeners go on
 * at the first handoff (watch()), when the drain needs to hear of each close at once.
 */
export class Tracker {
  readonly conns = new Set<Conn>()
  readonly sessions = new Set<Session>()
  /** Called (on a later turn) whenever a connection may have become idle. */
  onMaybeIdle: ((c: Conn) => void) | null = null
  /** Called at once when a connection closes, before anything can see the tracker without it. */
  onClosed: ((c: Conn) => void) | null = null
  readonly #server: net.Server
  #bySocket: WeakMap<net.Socket, Conn> | null = null
  #pruneAt = PRUNE_MIN
  #closing = 0

  constructor (server: net.Server, protocol: 'http1' | 'http2') {
    this.#server = server
    if (protocol === 'http2') {
      server.on('session', (session: Session) => {
        this.sessions.add(session)
        session.on('close', () => this.sessions.delete(session))
      })
      return
    }
    if (server instanceof tls.Server) server.on('secureConnection', (s: tls.TLSSocket) => this.add(s, 'tls'))
    else server.on('connection', (s: net.Socket) => this.add(s, 'http'))
  }

  add (socket: net.Socket, kind: ConnKind): Conn {
    const c = new Conn(socket, kind)
    this.conns.add(c)
    if (this.#bySocket !== null) this.#watchConn(c)
    else if (this.conns.size >= this.#pruneAt) this.#prune()
    return c
  }

  /** From the first handoff on: every connection reports its close at once. */
  watch (): void {
    if (this.#bySocket !== null) return
    this.#bySocket = new WeakMap()
    this.#prune()
    for (const c of this.conns) this.#watchConn(c)
  }

  #watchConn (c: Conn): void {
    (this.#bySocket as WeakMap<net.Socket, Conn>).set(c.socket, c)
    c.socket.on('close', () => { this.conns.delete(c); this.onClosed?.(c); this.#notify(c) })
  }

  /** Drops closed connections (a destroyed socket never reads again); amortized O(1) per connection. */
  #prune (): void {
    for (const c of this.conns) if (c.socket.destroyed) this.conns.delete(c)
    this.#pruneAt = Math.max(PRUNE_MIN, 2 * this.conns.size)
  }

  /**
   * Past the deadline, new responses on a closing connection say Connection: close. The 'request'
   * listener goes on with the first closing connection, ahead of the app's, which may answer at once.
   */
  closeAfterResponse (c: Conn): void {
    if (!c.closing && this.#closing++ === 0) this.#server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#request(req, res))
    c.closeAfterResponse()
  }

  #request (req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.#bySocket?.get(req.socket)?.closing === true && !res.headersSent) res.setHeader('Connection', 'close')
  }

  #notify (c: Conn): void {
    if (this.onMaybeIdle !== null) setImmediate(() => this.onMaybeIdle?.(c))
  }
}
