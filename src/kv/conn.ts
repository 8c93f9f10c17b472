/**
 * One client connection: it runs every complete command of a read in one go, and sends all their
 * replies in one write. An unfinished command waits in its query buffer (see query.ts), with the
 * parser part-way through it. Between two reads the client is always at a command boundary; its
 * query buffer is what moves to a successor on a live upgrade.
 */
import type { Socket } from 'node:net'
import type { RespParser } from './resp.ts'
import type { ClientInfo, Ctx } from './commands/context.ts'
import { dispatch } from './commands/table.ts'
import { QueryBuffer } from './query.ts'
import type { Allocator } from './segments.ts'

export interface ConnHost {
  readonly ctx: Ctx
  readonly allocator: Allocator
  readonly requirePass: boolean
  commands: number
  beginBatch (): void
  closed (conn: Conn): void
}

/** What an adopted client brings: its name, and the bytes of its predecessor's query buffer. */
export interface AdoptedClient {
  name: string
  authenticated: boolean
  /** Its selected database. */
  db: number
  /** The predecessor's query buffer region, taken over as is, with `length` bytes in use. */
  region?: { buffer: ArrayBuffer, length: number }
  /** Bytes to put in the query buffer (after the region's): packed small buffers, the socket's unread bytes. */
  bytes: Buffer[]
}
/**
 * Replies wait here until every read of this event-loop turn has run, then leave together (as
 * Redis writes in beforeSleep): the clients' wakeups come in one burst instead of between reads.
 */
let unsent: Conn[] = []
let flushScheduled = false

function flushUnsent (): void {
  flushScheduled = false
  const list = unsent
  unsent = []
  for (const c of list) c.flush()
}

export class Conn implements ClientInfo {
  readonly id: number
  name = ''
  closing = false
  authenticated: boolean
  /** The selected database (SELECT). */
  db = 0
  readonly socket: Socket
  readonly query: QueryBuffer
  private readonly host: ConnHost
  /** While frozen for a handoff, reads are kept in the query buffer instead of run. */
  private frozen = false
  /**
   * An adopted client's socket reads nothing before the commit point (the handoff gates it), so its
   * first read means we own everything: it may run at once, without waiting for `thaw`.
   */
  private adopted = false
  /** Replies of this turn's reads, not yet written (see `unsent`). */
  private queued: Buffer | null = null
  private inUnsent = false

  /** An adopted client starts frozen, with its predecessor's unread bytes kept until `thaw`. */
  constructor (id: number, socket: Socket, host: ConnHost, adopted?: AdoptedClient) {
    this.id = id
    this.socket = socket
    this.host = host
    this.query = new QueryBuffer(host.allocator)
    this.authenticated = adopted?.authenticated ?? !host.requirePass
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('drain', () => { if (!this.frozen) socket.resume() })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => host.closed(this))
    if (adopted !== undefined) {
      this.frozen = true
      this.adopted = true
      this.name = adopted.name
      this.db = adopted.db
      if (adopted.region !== undefined) this.query.adopt(adopted.region.buffer, adopted.region.length)
      for (const b of adopted.bytes) if (!this.query.absorb(b)) this.closing = true
    }
  }

  onData (chunk: Buffer): void {
    if (this.closing) return
    if (this.frozen) {
      if (!this.query.absorb(chunk)) this.closing = true
      if (this.adopted) this.thaw()
      return
    }
    this.host.beginBatch()
    this.query.parser.unauthenticated = this.mustAuth()
    this.settle(this.query.feed(chunk, this.runOne))
  }

  /** Runs one parsed command; false once the client is closing (QUIT), so the rest is not run. */
  private readonly runOne = (p: RespParser): boolean => {
    const ctx = this.host.ctx
    ctx.bind(p, this)
    dispatch(ctx)
    this.host.commands++
    // AUTH may have run: the parser's limits for the next command follow.
    p.unauthenticated = this.mustAuth()
    return !this.closing
  }

  /** Redis's authRequired(): there is a password and this client has not passed AUTH. */
  private mustAuth (): boolean {
    return !this.authenticated && this.host.requirePass
  }

  /** Ends a read: a protocol error gets its reply, a client past the query buffer limit is dropped. */
  private settle (outcome: string): void {
    if (outcome === 'error') this.host.ctx.out.error(this.query.parser.error)
    if (outcome === 'error' || outcome === 'overflow') this.closing = true
    this.queue()
  }

  /** Takes this read's replies out of the shared reply buffer; they are written at the end of the turn. */
  private queue (): void {
    const out = this.host.ctx.out
    if (out.pos === 0 && !this.closing) return
    if (out.pos > 0) {
      const bytes = out.take()
      this.queued = this.queued === null ? bytes : Buffer.concat([this.queued, bytes])
    }
    if (this.inUnsent) return
    this.inUnsent = true
    unsent.push(this)
    if (!flushScheduled) {
      flushScheduled = true
      setImmediate(flushUnsent)
    }
  }

  /** Writes the queued replies (and ends the connection after QUIT or a protocol error). */
  flush (): void {
    this.inUnsent = false
    const bytes = this.queued
    this.queued = null
    if (this.socket.destroyed) return
    if (bytes !== null) {
      const ok = this.socket.write(bytes)
      if (!ok && !this.closing) this.socket.pause()
    }
    // Closed for reading too once the reply is out, as Redis closes: a client that keeps sending
    // (a protocol desync) must see its writes fail, not fill a half-closed socket forever.
    if (this.closing) this.socket.end(() => this.socket.destroy())
  }

  /**
   * Stops running commands; the client is at a command boundary already, because every read is
   * handled to its end. What the socket had read but not yet delivered joins the query buffer, so
   * that all the client's unread bytes are there (and none has to travel as a handle's `pending`).
   */
  freeze (): void {
    this.frozen = true
    if (this.inUnsent) this.flush()
    if (this.socket.destroyed) return
    while (this.socket.read() !== null) { /* each chunk went to onData, which keeps it while frozen */ }
  }

  /** Serves again (after a failed handoff, or once an adopted client may run), starting with what was kept. */
  thaw (): void {
    this.frozen = false
    this.adopted = false
    if (!this.closing) {
      this.host.beginBatch()
      this.query.parser.unauthenticated = this.mustAuth()
      this.settle(this.query.run(this.runOne))
    } else {
      this.queue()
    }
    // A 'drain' that came while frozen did not resume reading.
    if (!this.closing && this.socket.isPaused() && this.socket.writableLength === 0) this.socket.resume()
  }
}
