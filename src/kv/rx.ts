/**
 * Client sockets read the way Redis reads them: every ready client once per event-loop turn, into one
 * shared buffer, with one call into JS for all of them (native/binding_rx.c, watched by a poller), and replies written
 * with one non-blocking send each. A Node stream per client costs a JS call, a fresh Buffer and an
 * event per read, which on a request/response load is most of the server's CPU.
 *
 * The Node socket still owns the connection: it accepts, it queues what the kernel did not take at
 * once (and emits 'drain'), it ends and closes, and a live upgrade exports it as any socket. Only
 * its reading is stopped while the reactor reads. `PAGEGIFT_KV_IO=node` keeps Node's own reading.
 */
import type { Socket } from 'node:net'
import { native, PollEvents, type PollHandle } from '../native.ts'

/** What the reactor calls for a client's socket. */
export interface RxClient {
  /** Bytes read: `buf[start, end)`, where `buf` may be the shared buffer, valid only during this call. */
  onData (buf: Buffer, start: number, end: number): void
  /** The peer closed its side (0) or the read failed (-errno). */
  onEnd (status: number): void
}

interface StreamHandle { fd?: number, reading: boolean, readStop(): number }

const BUFFER_BYTES = 1024 * 1024
const ROWS = 256

export class Reactor {
  private readonly buf = Buffer.allocUnsafeSlow(BUFFER_BYTES)
  private readonly table = new Int32Array(3 * ROWS)
  private readonly clients = new Map<number, RxClient>()
  /** True while a turn's reads are delivered: replies queued then are written by `afterBatch`, with no immediate. */
  batching = false
  /** The epoll set and its poller, while any socket is registered. */
  private ep = -1
  private poll: PollHandle | null = null

  /** `afterBatch` runs after every client of a turn has had its bytes (the place to write replies). */
  constructor (private readonly afterBatch: () => void) {}

  /**
   * Takes over reading a connected socket: stops Node's reading of it (for good: a resume must not
   * start it again), hands what Node had buffered to the client, then watches a dup of its fd.
   * Returns the reactor's fd for it, or -1 when the socket has no fd to read (it stays with Node).
   */
  attach (socket: Socket, client: RxClient): number {
    const h = (socket as unknown as { _handle?: StreamHandle | null })._handle
    if (h === null || h === undefined || typeof h.fd !== 'number' || h.fd < 0 || socket.destroyed) return -1
    if (!this.open()) return -1
    h.readStop()
    h.reading = true
    socket.pause()
    // read() also emits each chunk to the socket's 'data' listeners, if it has any.
    const listened = socket.listenerCount('data') > 0
    let chunk: Buffer | null
    while ((chunk = socket.read() as Buffer | null) !== null) if (!listened) client.onData(chunk, 0, chunk.length)
    const fd = native.rxAdd(this.ep, h.fd)
    if (fd < 0) return -1
    this.clients.set(fd, client)
    return fd
  }

  /** Reading on or off (for back-pressure); the socket stays registered. */
  watch (fd: number, on: boolean): void {
    if (this.clients.has(fd)) native.rxWatch(this.ep, fd, on)
  }

  /** Stops reading the socket and closes the reactor's dup of it. */
  detach (fd: number): void {
    if (!this.clients.delete(fd)) return
    native.rxDel(this.ep, fd)
    if (this.clients.size === 0) this.close()
  }

  private open (): boolean {
    if (this.ep >= 0) return true
    const ep = native.rxOpen()
    if (ep < 0) return false
    const poll = native.pollStart(ep, PollEvents.Readable, () => this.onRows(native.rxRead(ep, this.buf, this.table)))
    if (typeof poll === 'number') { native.close(ep); return false }
    this.ep = ep
    this.poll = poll
    return true
  }

  /** With no socket left, the epoll set goes too: an idle server keeps no watcher on the loop. */
  private close (): void {
    if (this.poll !== null) native.pollClose(this.poll)
    if (this.ep >= 0) native.close(this.ep)
    this.poll = null
    this.ep = -1
  }

  /**
   * Reads what is ready now instead of at the event loop's next poll. After a thaw the clients'
   * requests are already in their sockets: the next poll came 1 to 1.5 ms later, all of it in the
   * gap the clients see across a live upgrade.
   */
  pump (): void {
    if (this.ep < 0 || this.batching) return
    this.onRows(native.rxRead(this.ep, this.buf, this.table))
  }

  private onRows (rows: number): void {
    if (rows <= 0) return
    this.batching = true
    try {
      this.deliver(rows)
    } finally {
      this.batching = false
      this.afterBatch()
    }
  }

  private deliver (rows: number): void {
    const t = this.table
    for (let i = 0; i < rows; i++) {
      const client = this.clients.get(t[3 * i])
      // Closed by a command of an earlier row in this turn: its bytes go with it.
      if (client === undefined) continue
      const n = t[3 * i + 2]
      // The range, not a view of it: a request/response load reads once per request.
      if (n > 0) client.onData(this.buf, t[3 * i + 1], t[3 * i + 1] + n)
      else client.onEnd(n)
    }
  }
}

/** Node's reading (PAGEGIFT_KV_IO=node) or the reactor (the default). */
export function reactorWanted (): boolean {
  return process.env.PAGEGIFT_KV_IO !== 'node'
}

const { EAGAIN } = native.constants

/** A non-blocking send of `data[start, end)`: bytes taken (maybe fewer than asked, 0 when the socket is full), or -errno. */
export function sendNow (fd: number, data: Buffer, start: number, end: number): number {
  const n = native.rxSend(fd, data, start, end)
  return n === -EAGAIN ? 0 : n
}
