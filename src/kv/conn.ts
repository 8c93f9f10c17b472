/**
 * One client connection: it gathers bytes until whole commands are there, runs every complete
 * command of a read in one go, and sends all their replies in one write. Between two reads the
 * client is always at a command boundary; its unread bytes are `pending()`, which is what moves
 * to a successor on a live upgrade.
 */
import type { Socket } from 'node:net'
import { INCOMPLETE, PROTOCOL_ERROR, type RespParser } from './resp.ts'
import type { ClientInfo, Ctx } from './commands/context.ts'
import { dispatch } from './commands/table.ts'

/** A client whose unfinished command passes this is dropped (Redis's client-query-buffer-limit). */
export const MAX_QUERY_BUFFER = 1024 * 1024 * 1024

export interface ConnHost {
  readonly ctx: Ctx
  readonly parser: RespParser
  commands: number
  beginBatch (): void
  closed (conn: Conn): void
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
  readonly socket: Socket
  private readonly host: ConnHost
  /** Bytes of an unfinished command, and how many bytes it needs at least. */
  private partial: Buffer[] = []
  private partialLen = 0
  private need = 0
  /** While frozen for a handoff, reads are held here instead of run. */
  private frozen = false
  private held: Buffer[] = []
  /**
   * An adopted client's socket reads nothing before the commit point (the handoff gates it), so its
   * first read means we own everything: it may run at once, without waiting for `thaw`.
   */
  private adopted = false
  /** Replies of this turn's reads, not yet written (see `unsent`). */
  private queued: Buffer | null = null
  private inUnsent = false

  /** An adopted client starts frozen, with its predecessor's unread bytes held until `thaw`. */
  constructor (id: number, socket: Socket, host: ConnHost, adopted?: { pending: Buffer, name: string }) {
    this.id = id
    this.socket = socket
    this.host = host
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('drain', () => { if (!this.frozen) socket.resume() })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => host.closed(this))
    if (adopted !== undefined) {
      this.frozen = true
      this.adopted = true
      this.name = adopted.name
      if (adopted.pending.length > 0) this.held.push(adopted.pending)
    }
  }

  onData (chunk: Buffer): void {
    if (this.frozen) {
      this.held.push(chunk)
      if (this.adopted) this.thaw()
      return
    }
    let buf = chunk
    if (this.partialLen > 0) {
      this.partial.push(chunk)
      this.partialLen += chunk.length
      if (this.partialLen < this.need) return
      buf = Buffer.concat(this.partial, this.partialLen)
      this.partial = []
      this.partialLen = 0
    }
    this.run(buf)
  }

  /** Runs every whole command in `buf` and keeps the rest. */
  private run (buf: Buffer): void {
    const host = this.host
    const ctx = host.ctx
    const p = host.parser
    host.beginBatch()
    let pos = 0
    let n = 0
    while (pos < buf.length && !this.closing) {
      const next = p.parse(buf, pos, buf.length)
      if (next === INCOMPLETE) break
      if (next === PROTOCOL_ERROR) {
        ctx.out.error(p.error)
        this.closing = true
        pos = buf.length
        break
      }
      pos = next
      if (p.argc === 0) continue
      ctx.bind(p, this)
      dispatch(ctx)
      n++
    }
    host.commands += n
    if (pos < buf.length && !this.closing) this.keep(buf, pos, p.need)
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

  private keep (buf: Buffer, pos: number, need: number): void {
    const rest = buf.length - pos
    if (rest > MAX_QUERY_BUFFER || need > MAX_QUERY_BUFFER) { this.closing = true; return }
    // A copy, so a big read buffer is not kept alive for a few bytes of it.
    this.partial = [rest > 65536 ? buf.subarray(pos) : Buffer.from(buf.subarray(pos))]
    this.partialLen = rest
    this.need = need
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
    if (this.closing) this.socket.end()
  }

  /**
   * Stops running commands; the client is at a command boundary already, because every read is
   * handled to its end. Returns the bytes of its unfinished command.
   */
  freeze (): Buffer {
    this.frozen = true
    if (this.inUnsent) this.flush()
    return this.pending()
  }

  /** Serves again (after a failed handoff, or once an adopted client may run), starting with what was held. */
  thaw (): void {
    this.frozen = false
    this.adopted = false
    const held = this.held
    this.held = []
    for (const c of held) this.onData(c)
    // A 'drain' that came while frozen did not resume reading.
    if (!this.closing && this.socket.isPaused() && this.socket.writableLength === 0) this.socket.resume()
  }

  /** Bytes received but not yet run: an unfinished command plus anything held while frozen. */
  pending (): Buffer {
    return Buffer.concat([...this.partial, ...this.held])
  }
}
