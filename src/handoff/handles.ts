/**
 * Handles: listening sockets, open connections and raw fds that move to the next generation.
 *
 * A predecessor's handle keeps the kernel object alive and knows how to resume it (rollback) or let
 * go of it (commit). A successor's handle owns a received fd until adopted; an adoption made before
 * the commit point is held (no accept, no read, writes corked) until COMMIT arrives.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { linkSync, renameSync, rmSync } from 'node:fs'
import net from 'node:net'
import { PagegiftError } from '../errors.ts'
import { defaultEnv, type Env } from './env.ts'

export type HandleKind = 'server' | 'socket' | 'fd'

/** Commit/abort hooks of a successor that has not reached its commit point yet. */
export interface Gate {
  committed: boolean
  onCommit: (fn: () => void) => void
  onAbort: (fn: () => void) => void
  /** Called once the predecessor flushed (ok) or gave up on the output it had queued on the named handle. */
  onDrained: (handle: string, fn: (ok: boolean) => void) => void
}

interface Internals {
  fd: number | null
  /** Predecessor side: undo the export (rollback). */
  resume?: () => void
  /** Predecessor side: let go after COMMIT. */
  release?: () => void
  /** Predecessor side: resolves when nothing we wrote is still queued; false if the connection closed instead. */
  flush?: () => Promise<boolean>
  /** Predecessor side: output the app wrote is still queued in this process (not yet taken by the kernel). */
  queued?: () => boolean
  /** Predecessor side: the connection closed after it was exported (it is left out). */
  closed?: () => boolean
  /** Successor side: set while the handoff that delivered this handle is not committed. */
  gate?: Gate
  /** Successor side: the name under which the predecessor reports this connection drained. */
  draining?: string
  /** Predecessor side: the connection exported (a socket offered before the pause is matched by it). */
  source?: net.Socket
  /** Successor side: the connection already wrapped (`prewrap`), from an fd offered before the pause. */
  socket?: net.Socket
  /** The OS layer that owns the fd. */
  env: Env
}

const internals = new WeakMap<Handle, Internals>()

/** The handoff whose onHandoff contributors are running: its env, and every handle they export. */
interface Exporting { env: Env, exported: Handle[] }
const exporting = new AsyncLocalStorage<Exporting>()

/** The handoff whose contributors run without async context tracking: there is at most one. */
let plain: Exporting | null = null
/** Handoffs of this process whose contributors run under `exporting` (only while `plain` is taken). */
let tracked = 0

/**
 * Runs `fn` (the onHandoff contributors) so that every handle exported in it, even by a contributor
 * that then fails, lands in this handoff's `exported`: a rollback resumes them all. One list per
 * handoff. While it is the only one in this process that is quiescing, a handle exported by anyone
 * is this handoff's. Only a second handoff quiescing at the same time is told apart by async context
 * (AsyncLocalStorage). Turning that tracking on costs too much for the common case: V8 then drops
 * every function it optimized that awaits (their code assumed no promise hooks). Running those cold
 * took the quiesce of a service with 8 connections from about 0.5 to 1 ms, inside the pause.
 */
export async function collectingExports<T> (env: Env, exported: Handle[], fn: () => Promise<T>): Promise<T> {
  const ctx = { env, exported }
  if (plain === null) {
    plain = ctx
    try {
      return await fn()
    } finally {
      plain = null
    }
  }
  tracked++
  try {
    return await exporting.run(ctx, fn)
  } finally {
    if (--tracked === 0) exporting.disable()
  }
}

/** The handoff an export belongs to: the tracked one whose contributor is running, else the plain one. */
function exportingNow (): Exporting | undefined {
  return exporting.getStore() ?? plain ?? undefined
}

/** A listening socket, an open connection (with its unread bytes) or a raw fd on its way to the next generation. */
export class Handle {
  readonly kind: HandleKind
  /** Bytes the connection received that nobody has parsed yet (sockets only). */
  readonly pending: Buffer
  /** What the handle was, for logs and `pagegift status` (address, port, remote peer). */
  readonly info: Readonly<Record<string, string | number>>
  constructor (kind: HandleKind, pending: Buffer, info: Record<string, string | number>, inner: Internals) {
    this.kind = kind
    this.pending = pending
    this.info = Object.freeze({ ...info })
    internals.set(this, inner)
  }

  /** Takes the raw fd out of a received 'fd' handle; the caller owns (and closes) it. */
  takeFd (): number {
    if (this.kind !== 'fd') throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_HANDLE', `takeFd() is for 'fd' handles; use adopt${this.kind === 'server' ? 'Server' : 'Socket'}() for a ${this.kind}`)
    return take(this)
  }
}

function inner (h: unknown): Internals {
  const i = h instanceof Handle ? internals.get(h) : undefined
  if (i === undefined) throw new TypeError('The "handle" argument must be a Handle from exportServer(), exportSocket() or gen.inherited.handles')
  return i
}

function take (h: Handle): number {
  const i = inner(h)
  if (i.release !== undefined) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_HANDLE', 'This handle was exported here: it travels to a successor, which adopts the handle it receives')
  if (i.fd === null) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_HANDLE', 'This handle was already adopted')
  const fd = i.fd
  i.fd = null
  return fd
}

interface ServerInternals { _handle: { fd?: number, close(): void } | null }
interface StreamHandle { fd?: number, reading: boolean, readStart(): number, readStop(): number, writeQueueSize?: number }
interface SocketInternals { _handle: StreamHandle | null }

function describe (addr: net.AddressInfo | string | null): Record<string, string | number> {
  if (addr === null) return {}
  if (typeof addr === 'string') return { path: addr }
  return { address: addr.address, port: addr.port, family: addr.family }
}

/**
 * Stops a server accepting without closing its socket: a dup of the listening fd keeps the socket
 * and its kernel backlog alive, so connections arriving during the handoff queue instead of being
 * refused. Returns the handle to put in `onHandoff`'s `handles`.
 */
export function exportServer (server: net.Server): Handle {
  if (isTlsServer(server)) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_TLS', 'A TLS server cannot be exported as such: export the underlying net.Server and re-wrap it in the successor')
  if (!(server instanceof net.Server)) throw new TypeError('The "server" argument must be a net.Server')
  const s = server as unknown as ServerInternals
  const fd = s._handle?.fd
  if (s._handle === null || typeof fd !== 'number' || fd < 0) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_NOT_LISTENING', 'The server is not listening')
  const info = describe(server.address())
  const ctx = exportingNow()
  const env = ctx?.env ?? defaultEnv
  const dup = env.dup(fd)
  // Closing only the libuv handle (not server.close()) stops accepting without emitting 'close'.
  closeKeepingPath(s._handle, typeof info.path === 'string' ? info.path : undefined)
  s._handle = null
  const i: Internals = { fd: dup, env }
  i.resume = () => { i.fd = null; server.listen({ fd: dup }) }
  i.release = () => { if (i.fd !== null) env.closeFd(dup); i.fd = null }
  return collected(new Handle('server', Buffer.alloc(0), info, i), ctx)
}

/**
 * libuv unlinks a Unix socket's path when it closes the server handle that bound it, which would
 * leave the kept socket unreachable by name. A second link keeps the name: it is renamed back over
 * the path at once, so a client can miss it only for the microseconds in between.
 */
function closeKeepingPath (handle: { close(): void }, path: string | undefined): void {
  if (path === undefined || path.startsWith('\0')) {
    handle.close()
    return
  }
  const keep = `${path}.${process.pid}.keep`
  let linked = false
  try {
    rmSync(keep, { force: true })
    linkSync(path, keep)
    linked = true
  } catch {}
  handle.close()
  if (linked) renameSync(keep, path)
}

function collected (h: Handle, ctx = exportingNow()): Handle {
  ctx?.exported.push(h)
  return h
}

/** Reads what the stream already buffered without emitting it to the app's 'data' listeners. */
function drainReadable (socket: net.Socket): Buffer {
  const listeners = socket.rawListeners('data') as ((...a: unknown[]) => void)[]
  socket.removeAllListeners('data')
  const parts: Buffer[] = []
  try {
    let chunk: Buffer | string | null
    while ((chunk = socket.read() as Buffer | string | null) !== null) parts.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
  } finally {
    for (const l of listeners) socket.on('data', l)
  }
  return Buffer.concat(parts)
}

const isTls = (socket: object): boolean => (socket as { encrypted?: unknown }).encrypted === true

/** The fd of an open connection, or -1 once it closed (destroyed, or its handle is gone). */
function liveFd (socket: net.Socket): number {
  const h = (socket as unknown as SocketInternals)._handle
  return h === null || socket.destroyed || typeof h.fd !== 'number' || h.fd < 0 ? -1 : h.fd
}

/** The fd exportSocket would move this connection by now, or -1: not a net.Socket, TLS, still connecting, or closed. */
export function movableFd (socket: unknown): number {
  if (!(socket instanceof net.Socket) || isTls(socket) || socket.connecting) return -1
  return liveFd(socket)
}

/**
 * Pauses a connection at a request boundary and hands it over with its unread bytes: `pending`
 * (what the app read but did not parse) followed by what the stream had buffered. The app must not
 * write to it afterwards. Output still queued in this process does not delay the handoff: the
 * connection moves at once, this process flushes that output after the commit, and the successor's
 * own writes to the connection wait until it has (see docs/handoff.md, "Draining").
 */
export function exportSocket (socket: net.Socket, pending: Buffer = Buffer.alloc(0)): Handle {
  if (isTls(socket)) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_TLS', 'A TLS socket cannot move: its session keys live in this process\'s OpenSSL state')
  if (!(socket instanceof net.Socket)) throw new TypeError('The "socket" argument must be a net.Socket')
  if (!Buffer.isBuffer(pending)) throw new TypeError('The "pending" argument must be a Buffer')
  if (socket.connecting) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_NOT_CONNECTED', 'The socket is still connecting')
  if (liveFd(socket) < 0) {
    // A connection that closed (its 'close' event may still be on its way) is simply left out.
    return new Handle('socket', Buffer.alloc(0), { closed: 1 }, { fd: null, flush: async () => false, closed: () => true, env: defaultEnv })
  }
  const h = (socket as unknown as SocketInternals)._handle as StreamHandle & { fd: number }
  const flowing = socket.readableFlowing
  // Pause first: 'pause' listeners run inside pause(), and node:http's clears the handle's reading
  // flag. Set after them, the flag stays true, so that neither the read of the buffered bytes below
  // nor a resume after a rollback starts the handle a second time (reading bytes that belong to the
  // successor, or failing with EALREADY and destroying the connection).
  socket.pause()
  h.readStop()
  h.reading = true
  const buffered = drainReadable(socket)
  const info = { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0 }
  const i: Internals = { fd: h.fd, env: exportingNow()?.env ?? defaultEnv }
  const queued = (): boolean => socket.writableLength > 0 || (h.writeQueueSize ?? 0) > 0
  i.queued = queued
  i.closed = () => socket.destroyed
  i.flush = async () => {
    while (!socket.destroyed && queued()) await new Promise((resolve) => setTimeout(resolve, 1))
    return !socket.destroyed
  }
  i.resume = () => {
    if (socket.destroyed) return
    if (buffered.length > 0) socket.unshift(buffered)
    h.readStart()
    if (flowing === true) socket.resume()
  }
  i.release = () => { i.fd = null; socket.destroy() }
  i.source = socket
  return collected(new Handle('socket', Buffer.concat([pending, buffered]), info, i))
}

/** The connection an exported socket handle came from (undefined for other handles, or one closed before export). */
export function exportedSocket (h: Handle): net.Socket | undefined {
  return inner(h).source
}

/**
 * Successor: wraps a connection offered before the pause (a dup of its fd; the predecessor still
 * serves it). It neither reads nor writes (writes are corked) until a STATE names it and the commit
 * lets it run. Building a net.Socket costs 30-50 µs of JS (stream and handle setup); done here, it
 * is not in the pause. Throws for an fd that is not a stream socket; the fd is then still the caller's.
 */
export function prewrap (fd: number): net.Socket {
  const socket = new net.Socket({ fd, readable: true, writable: true, manualStart: true } as net.SocketConstructorOpts)
  const h = (socket as unknown as SocketInternals)._handle as StreamHandle
  // reading = true without readStart(): nothing reads from the kernel until COMMIT.
  h.reading = true
  socket.cork()
  return socket
}

/**
 * Listens on an inherited listening socket. Before the successor's commit point the server is not
 * yet listening (it accepts nothing); it starts at COMMIT. Pass your own server (an http.Server, say)
 * to have it listen instead of a fresh net.Server.
 */
export function adoptServer (handle: Handle, server: net.Server = net.createServer()): net.Server {
  if (inner(handle) !== undefined && handle.kind !== 'server') throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_HANDLE', `adoptServer() needs a 'server' handle, got '${handle.kind}'`)
  if (!(server instanceof net.Server)) throw new TypeError('The "server" argument must be a net.Server')
  const { gate, env } = inner(handle)
  const fd = take(handle)
  if (gate === undefined || gate.committed) {
    server.listen({ fd })
  } else {
    gate.onCommit(() => server.listen({ fd }))
    gate.onAbort(() => { if (!server.listening) env.closeFd(fd) })
  }
  return server
}

/**
 * Wraps an inherited connection. Before the commit point it neither reads nor writes (writes are
 * corked): parse `pending` and answer only after `await gen.ready()`.
 */
export function adoptSocket (handle: Handle): { socket: net.Socket, pending: Buffer } {
  if (inner(handle) !== undefined && handle.kind !== 'socket') throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_HANDLE', `adoptSocket() needs a 'socket' handle, got '${handle.kind}'`)
  const i = inner(handle)
  const gate = i.gate
  const prewrapped = i.socket
  i.socket = undefined
  // Wrapped before the pause (offered), or now.
  const socket = prewrapped ?? prewrap(take(handle))
  const h = (socket as unknown as SocketInternals)._handle as StreamHandle
  const draining = i.draining
  if (gate === undefined || gate.committed) {
    h.readStart()
    socket.uncork()
  } else {
    gate.onCommit(() => { h.readStart(); if (draining === undefined) socket.uncork() })
    gate.onAbort(() => socket.destroy())
    // Our writes stay corked behind the predecessor's queued output; if that output was lost, so is the stream.
    if (draining !== undefined) gate.onDrained(draining, (ok) => { if (ok) socket.uncork(); else socket.destroy() })
  }
  return { socket, pending: handle.pending }
}

/** A raw fd to hand over; the caller keeps owning it. */
export function fdHandle (fd: number): Handle {
  if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`A raw fd handle must be a non-negative integer. Received ${fd}`)
  return new Handle('fd', Buffer.alloc(0), { fd }, { fd, env: defaultEnv })
}

/** A handle received in STATE; `fd` is ours until adopted. `draining`: its name, if the predecessor still flushes its output. */
export function inheritedHandle (kind: HandleKind, fd: number | net.Socket, pending: Buffer, info: Record<string, string | number>, gate: Gate, draining?: string, env: Env = defaultEnv): Handle {
  // A socket offered before the pause comes already wrapped (`prewrap`), with no fd of its own to take.
  const own = typeof fd === 'number' ? { fd } : { fd: null, socket: fd }
  const h = new Handle(kind, pending, info, { ...own, gate, env, ...(draining !== undefined ? { draining } : {}) })
  gate.onAbort(() => discardHandle(h))
  return h
}

/** The fd to send for a handle (the channel dups it; we keep ours). */
export function wireFd (h: Handle): number {
  const fd = inner(h).fd
  if (fd === null) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_HANDLE', 'This handle was already adopted or released')
  return fd
}

/** Closes a received handle's fd if nobody adopted it (a handle this process exported is left alone). */
export function discardHandle (h: Handle): void {
  const i = inner(h)
  i.socket?.destroy()
  i.socket = undefined
  if (i.release !== undefined || i.fd === null) return
  i.env.closeFd(i.fd)
  i.fd = null
}

/** Waits for a handle's queued writes; false when it closed meanwhile (it is then left out). */
export async function flushHandle (h: Handle): Promise<boolean> { return await inner(h).flush?.() ?? true }
export function hasQueuedOutput (h: Handle): boolean { return inner(h).queued?.() ?? false }
export function handleClosed (h: Handle): boolean { return inner(h).closed?.() ?? false }
export function resumeHandle (h: Handle): void { inner(h).resume?.() }
export function releaseHandle (h: Handle): void { inner(h).release?.() }

/**
 * A tls.Server (https.Server included), told without loading node:tls: that module costs every
 * process that merely joins a handoff ~15 ms of start-up. Only TLS servers have setSecureContext.
 */
function isTlsServer (server: object): boolean {
  return typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function'
}
