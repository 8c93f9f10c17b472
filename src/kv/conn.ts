/**
 * One client connection: it runs every complete command of a read in one go, and sends all their
 * replies in one write. An unfinished command waits in its query buffer (see query.ts), with the
 * parser part-way through it. Between two reads the client is always at a command boundary; its
 * query buffer is what moves to a successor on a live upgrade.
 */
import type { Socket } from 'node:net'
import { RespParser } from './resp.ts'
import type { Ctx } from './commands/context.ts'
import { execute } from './commands/multi.ts'
import type { Waiter } from './session.ts'
import { QueryBuffer } from './query.ts'
import type { Allocator } from './segments.ts'
import { encodeCommand, hubOf, type Session, type Transaction, type WatchedKey } from './session.ts'
import { afterCommand } from './client-reply.ts'
import { Reactor, reactorWanted, sendNow, type RxClient } from './rx.ts'

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
/** Reads every client's socket once per turn, then writes this turn's replies (null: Node's own reading). */
const reactor = reactorWanted() ? new Reactor(flushUnsent) : null

/** A client whose unsent output passes this when a message comes for it is disconnected (Redis: 32 MiB for pub/sub). */
const OUTPUT_LIMIT = 32 * 1024 * 1024

/**
 * Replies wait here until every read of this event-loop turn has run, then leave together (as
 * Redis writes in beforeSleep): the clients' wakeups come in one burst instead of between reads.
 */
let unsent: Array<Conn | null> = []
let unsentCount = 0
/** The other list, swapped in at each flush: no array is made per turn. */
let spare: Array<Conn | null> = []
let flushScheduled = false

function flushUnsent (): void {
  flushScheduled = false
  const list = unsent
  const n = unsentCount
  // A flush that queues more (it cannot today) queues it on the other list, for the next turn.
  unsent = spare
  unsentCount = 0
  spare = list
  const out = n > 0 ? (list[0] as Conn).host.ctx.out : null
  for (let i = 0; i < n; i++) {
    const c = list[i] as Conn
    list[i] = null
    c.flush()
  }
  // Every range of the shared reply buffer has now been written (or pinned by its write).
  out?.recycle()
}

/** Runs the commands that already arrived on the reactor's sockets, now (see Reactor.pump). */
export function readReadyNow (): void {
  reactor?.pump()
}

export class Conn implements Session, RxClient {
  readonly id: number
  name = ''
  closing = false
  authenticated: boolean
  resp: 2 | 3 = 2
  db = 0
  tx: Transaction | null = null
  watched: WatchedKey[] = []
  watchDirty = false
  channels = new Set<string>()
  patterns = new Set<string>()
  blocked: Waiter | null = null
  inExec = false
  /** CLIENT REPLY's mode (client-reply.ts): 0 while every reply is sent. */
  replyMode = 0
  /** Whole commands that came in the same read as a command that blocked: they run once it is answered. */
  held: Buffer[] = []
  readonly socket: Socket
  readonly query: QueryBuffer
  readonly host: ConnHost
  /** While frozen for a handoff, reads are kept in the query buffer instead of run. */
  private frozen = false
  /**
   * An adopted client's socket reads nothing before the commit point (the handoff gates it), so its
   * first read means we own everything: it may run at once, without waiting for `thaw`.
   */
  private adopted = false
  /**
   * Replies of this turn's reads, not yet written (see `unsent`): `qBuf[qStart, qEnd)`, usually a
   * range of the shared reply buffer (kept as numbers: a view per read was most of a request's
   * garbage), then any more parts.
   */
  private qBuf: Buffer | null = null
  private qStart = 0
  private qEnd = 0
  private qMore: Buffer[] | null = null
  private inUnsent = false
  /** Set while this client's own command runs: messages to it then follow that command's reply. */
  private running = false
  private deferred: Buffer[] | null = null
  /** The reactor's fd for this socket while the reactor reads it, else -1 (Node reads it). */
  private rxFd = -1

  /** An adopted client starts frozen, with its predecessor's unread bytes kept until `thaw`. */
  constructor (id: number, socket: Socket, host: ConnHost, adopted?: AdoptedClient) {
    this.id = id
    this.socket = socket
    this.host = host
    this.query = new QueryBuffer(host.allocator)
    this.authenticated = adopted?.authenticated ?? !host.requirePass
    // An adopted connection is the kernel socket its predecessor set this on: no system call in the pause.
    if (adopted === undefined) socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk, 0, chunk.length))
    socket.on('drain', () => { if (!this.frozen) this.reading(true) })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => {
      this.detach()
      host.closed(this)
    })
    if (adopted !== undefined) {
      this.frozen = true
      this.adopted = true
      this.name = adopted.name
      this.db = adopted.db
      if (adopted.region !== undefined) this.query.adopt(adopted.region.buffer, adopted.region.length)
      for (const b of adopted.bytes) if (!this.query.absorb(b)) this.closing = true
    } else {
      this.attach()
    }
  }

  /** The peer closed (0) or the read failed (-errno): as Node's socket does on its own reads. */
  onEnd (status: number): void {
    if (status < 0) {
      this.socket.destroy()
      return
    }
    this.closing = true
    this.queue()
  }

  /** Has the reactor read this socket (stopping Node's reading of it), unless PAGEGIFT_KV_IO=node. */
  private attach (): void {
    if (reactor === null || this.rxFd >= 0 || this.closing) return
    this.rxFd = reactor.attach(this.socket, this)
    if (this.rxFd < 0 && !this.socket.destroyed) this.socket.resume()
  }

  /** Stops the reactor reading (for a handoff, or at close): unread bytes stay in the kernel, with the socket. */
  private detach (): void {
    if (this.rxFd < 0) return
    reactor?.detach(this.rxFd)
    this.rxFd = -1
  }

  /** Back-pressure: stops or starts reading the client. */
  private reading (on: boolean): void {
    if (this.rxFd >= 0) reactor?.watch(this.rxFd, on)
    else if (on) this.socket.resume()
    else this.socket.pause()
  }

  onData (chunk: Buffer, start: number, end: number): void {
    if (this.closing) return
    if (this.frozen || this.blocked !== null) {
      // A blocked client's next commands wait, unparsed, until its answer (as in Redis).
      if (!this.query.absorb(chunk, start, end)) this.closing = true
      if (this.adopted) this.thaw()
      else if (this.closing) this.queue()
      return
    }
    this.host.beginBatch()
    this.query.parser.unauthenticated = this.mustAuth()
    this.settle(this.query.feed(chunk, this.runOne, start, end))
  }

  /** Runs one parsed command; false once the client is closing (QUIT), so the rest is not run. */
  private readonly runOne = (p: RespParser): boolean => {
    const ctx = this.host.ctx
    ctx.bind(p, this)
    if (this.blocked !== null) {
      this.held.push(encodeCommand(ctx))
      return true
    }
    ctx.out.resp = this.resp
    const mark = ctx.out.pos
    this.running = true
    try {
      execute(ctx)
    } finally {
      this.running = false
    }
    if (this.replyMode !== 0) afterCommand(this, ctx.out, mark)
    this.host.commands++
    if (this.deferred !== null) {
      for (const b of this.deferred) ctx.out.append(b)
      this.deferred = null
    }
    hubOf(ctx).blocking.serveReady(ctx)
    // AUTH may have run: the parser's limits for the next command follow.
    p.unauthenticated = this.mustAuth()
    return !this.closing
  }

  /** Out-of-band output: written after this client's current command, or with this turn's replies. */
  deliver (bytes: Buffer): void {
    if (this.socket.destroyed) return
    // Redis's client-output-buffer-limit for pub/sub: a subscriber that does not read is dropped.
    if (this.socket.writableLength > OUTPUT_LIMIT) { this.socket.destroy(); return }
    if (this.running) (this.deferred ??= []).push(bytes)
    else this.enqueue(bytes, 0, bytes.length)
  }

  /** Its blocked command was answered: what it sent meanwhile runs next turn (unless frozen: then at thaw). */
  unblocked (): void {
    setImmediate(() => {
      if (this.frozen || this.blocked !== null || this.socket.destroyed) return
      this.host.beginBatch()
      this.runPending()
    })
  }

  /** Runs held commands, then the query buffer, stopping if one blocks. */
  private runPending (): void {
    const p = new RespParser()
    while (this.held.length > 0 && this.blocked === null && !this.closing) {
      const wire = this.held.shift() as Buffer
      p.parse(wire, 0, wire.length)
      this.runOne(p)
    }
    if (this.blocked !== null || this.closing) { this.queue(); return }
    this.query.parser.unauthenticated = this.mustAuth()
    this.settle(this.query.run(this.runOne))
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

  /** Takes this read's replies out of the shared reply buffer (a range); they are written at the end of the turn. */
  private queue (): void {
    const out = this.host.ctx.out
    if (out.pending) {
      const { buf, pos } = out
      this.enqueue(buf, out.claim(), pos)
    } else if (this.closing) {
      this.enqueue(null, 0, 0)
    }
  }

  /** Adds `buf[start, end)` to what this turn writes (null: nothing), and makes sure it is written. */
  private enqueue (buf: Buffer | null, start: number, end: number): void {
    if (buf !== null && end > start) {
      if (this.qBuf === null) {
        this.qBuf = buf
        this.qStart = start
        this.qEnd = end
      } else if (this.qMore === null && buf === this.qBuf && start === this.qEnd) {
        this.qEnd = end
      } else {
        (this.qMore ??= []).push(buf.subarray(start, end))
      }
    }
    if (this.inUnsent) return
    this.inUnsent = true
    unsent[unsentCount++] = this
    // While the reactor runs a turn's reads it flushes after them; Node's reads need the immediate.
    if (!flushScheduled && reactor?.batching !== true) {
      flushScheduled = true
      setImmediate(flushUnsent)
    }
  }

  /** Writes the queued replies (and ends the connection after QUIT or a protocol error). */
  flush (): void {
    this.inUnsent = false
    const first = this.qBuf
    const more = this.qMore
    let start = this.qStart
    let end = this.qEnd
    this.qBuf = null
    this.qMore = null
    if (this.socket.destroyed) return
    if (first !== null) {
      // Ranges of the shared reply buffer: behind output that is still queued, a copy, so that a
      // client that does not read holds no reply buffer; else the range itself, and if the kernel
      // did not take it all, the buffer stays with the write (pinned) and the next turn uses a new one.
      // Corked: an adopted client's predecessor may still be flushing its output, which goes first.
      const backlog = this.socket.writableLength > 0 || this.socket.writableCorked > 0
      let data = first
      if (more !== null || backlog) {
        data = Buffer.concat([first.subarray(start, end), ...(more ?? [])])
        start = 0
        end = data.length
      }
      if (!backlog && this.rxFd >= 0) {
        const n = sendNow(this.rxFd, data, start, end)
        if (n < 0) { this.socket.destroy(); return }
        start += n
      }
      if (start < end) {
        const ok = this.socket.write(data.subarray(start, end))
        if (!backlog && this.socket.writableLength > 0) this.host.ctx.out.pin()
        if (!ok && !this.closing) this.reading(false)
      }
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
    this.detach()
    if (this.socket.destroyed) return
    while (this.socket.read() !== null) { /* each chunk went to onData, which keeps it while frozen */ }
  }

  /** Serves again (after a failed handoff, or once an adopted client may run), starting with what was kept. */
  thaw (): void {
    this.frozen = false
    this.adopted = false
    if (!this.closing) {
      this.host.beginBatch()
      this.runPending()
    } else {
      this.queue()
    }
    if (this.closing) return
    // After what was kept ran: what Node read meanwhile (an adopted socket reads from the commit) follows it.
    this.attach()
    // A 'drain' that came while frozen did not resume reading.
    if (this.rxFd < 0 && this.socket.isPaused() && this.socket.writableLength === 0) this.socket.resume()
    // Joining the reactor turned reading on: off again if a 'drain' is still to come.
    else if (this.rxFd >= 0 && this.socket.writableNeedDrain) this.reading(false)
  }
}
