/**
 * The policy of one wrapped server across handoffs: what moves at the quiesce, what is held until
 * the commit, and how the old generation drains after it (moves, Connection: close, GOAWAY, 1012,
 * the hard cap), then exits.
 */
import { rmSync } from 'node:fs'
import type net from 'node:net'
import { handoff } from '../index.ts'
import { Conn, Tracker } from './conns.ts'
import { MoveSender, movesPath } from './moves.ts'

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

/** What the old generation did with its connections after the commit. */
export interface DrainReport {
  /** Connections that moved at the quiesce, with the listener. */
  movedAtQuiesce: number
  /** Connections that moved after finishing a request here. */
  moved: number
  /** Connections closed here: TLS, HTTP/2 sessions, WebSockets, and those past the drain deadline. */
  closed: number
  /** Connections still busy at the hard cap, destroyed; their response was cut off. */
  cut: number
}

/** The part of a `ws` WebSocketServer used here. */
export interface WebSocketServerLike { clients: Iterable<{ close (code?: number, reason?: string): void }> }

export interface Policy {
  socket: string
  drainTimeoutMs: number
  hardCapMs: number
  websockets: WebSocketServerLike[]
  exitOnDrain: boolean
}

const SWEEP_MS = 10
const LISTENER = 'http:listener'
const CONN = 'http:conn:'

export class LiveHttp {
  readonly tracker: Tracker
  readonly report: DrainReport = { movedAtQuiesce: 0, moved: 0, closed: 0, cut: 0 }
  readonly drained: Promise<DrainReport>
  #mode: 'serving' | 'holding' | 'draining' = 'serving'
  #front: net.Server
  #p: Policy
  #sender: Promise<MoveSender | null> | null = null
  #moving = new Set<Conn>()
  #incoming: Promise<void> = Promise.resolve()
  #sweep: NodeJS.Timeout | null = null
  #timers: NodeJS.Timeout[] = []
  #resolveDrained!: (r: DrainReport) => void
  #done = false
  #successor = 0

  constructor (front: net.Server, tracker: Tracker, policy: Policy) {
    this.#front = front
    this.tracker = tracker
    this.#p = policy
    this.drained = new Promise((resolve) => { this.#resolveDrained = resolve })
  }

  static isListener (name: string): boolean { return name === LISTENER }
  static isConn (name: string): boolean { return name.startsWith(CONN) }

  /** Connections still arriving from our own predecessor keep this generation from finishing. */
  receiving (done: Promise<void>): void {
    this.#incoming = done
    void done.then(() => this.#check())
  }

  /**
   * offerSockets: every open plain HTTP/1 connection, under the name quiesce() exports it by, so that
   * the successor wraps it before the pause instead of inside it. One still busy at the quiesce stays
   * here (it moves after its response, or drains) and the successor drops its copy.
   */
  offer (): Record<string, net.Socket> {
    const out: Record<string, net.Socket> = {}
    for (const c of this.tracker.conns) if (c.kind === 'http' && !c.socket.destroyed && !c.upgraded) out[`${CONN}${c.id}`] = c.socket
    return out
  }

  /** onHandoff: the listener and every idle HTTP/1 connection go now; busy ones finish here first. */
  quiesce (successor: number): handoff.HandoffState {
    this.#successor = successor
    this.tracker.watch()
    const handles: Record<string, handoff.Handle> = { [LISTENER]: handoff.exportServer(this.#front) }
    let moved = 0
    for (const c of this.tracker.conns) {
      if (c.kind !== 'http' || !c.idle()) continue
      c.exported = true
      handles[`${CONN}${c.id}`] = c.export()
      moved++
    }
    this.report.movedAtQuiesce = moved
    this.#mode = 'holding'
    this.#watch()
    return { handles }
  }

  /** Rollback: everything we held reads again; the handoff resumed what it had. */
  resumed (): void {
    this.#mode = 'serving'
    // A successor killed before its commit cannot remove the socket it listened on for moves.
    if (this.#successor > 0 && !alive(this.#successor)) rmSync(movesPath(this.#p.socket, this.#successor), { force: true })
    this.#unwatch()
    for (const c of this.tracker.conns) {
      c.exported = false
      c.resume()
    }
  }

  /** Commit: the successor serves. Drain what stayed here, then exit. */
  handedOff (toPid: number): void {
    this.#mode = 'draining'
    this.#sender = MoveSender.open(this.#p.socket, toPid, 5_000).catch(() => null)
    for (const s of this.tracker.sessions) s.close() // GOAWAY: running streams finish, no new ones.
    for (const wss of this.#p.websockets) for (const ws of wss.clients) ws.close(1012, 'Service Restart')
    for (const c of this.tracker.conns) if (c.kind === 'tls') this.tracker.closeAfterResponse(c)
    this.#timers.push(setTimeout(() => { for (const c of this.tracker.conns) this.tracker.closeAfterResponse(c) }, this.#p.drainTimeoutMs))
    this.#timers.push(setTimeout(() => this.#hardCap(), this.#p.hardCapMs))
    this.#sweepAll()
  }

  #watch (): void {
    this.tracker.onMaybeIdle = (c) => this.#maybeIdle(c)
    // Counted when it happens: the deferred onMaybeIdle may come after the drain has finished.
    this.tracker.onClosed = (c) => this.#countClosed(c)
    this.#sweep ??= setInterval(() => this.#sweepAll(), SWEEP_MS)
  }

  #unwatch (): void {
    this.tracker.onMaybeIdle = null
    this.tracker.onClosed = null
    if (this.#sweep !== null) clearInterval(this.#sweep)
    this.#sweep = null
  }

  #sweepAll (): void {
    for (const c of this.tracker.conns) this.#maybeIdle(c)
    this.#check()
  }

  #maybeIdle (c: Conn): void {
    if (!this.tracker.conns.has(c)) {
      // Closed by the server itself after a Connection: close response (or by the client).
      this.#countClosed(c)
      return this.#check()
    }
    if (c.exported || this.#moving.has(c)) return
    if (this.#mode === 'holding') {
      if (c.kind === 'http' && c.held === null && c.idle()) c.hold()
    } else if (this.#mode === 'draining') {
      if (c.kind !== 'http' || c.closing) {
        if (c.held === null && c.idle()) this.#close(c)
      } else if (c.held !== null || c.idle()) {
        void this.#move(c)
      }
    }
  }

  /** A connection closed by the server itself after a Connection: close response (or by the client). */
  #countClosed (c: Conn): void {
    if (this.#mode === 'draining' && c.closing && !c.counted) { c.counted = true; this.report.closed++ }
  }

  #close (c: Conn): void {
    c.counted = true
    this.report.closed++
    this.tracker.conns.delete(c)
    c.socket.end()
    c.socket.setTimeout(2_000, () => c.socket.destroy())
  }

  async #move (c: Conn): Promise<void> {
    this.#moving.add(c)
    const held = c.held ?? c.hold()
    const sender = await this.#sender
    const fd = c.fd
    const r = sender === null || fd < 0 ? 'refused' : await sender.send(fd, held.pending)
    this.#moving.delete(c)
    if (r === 'refused') {
      // The successor never read it: serve it here to the end of its next response.
      c.resume()
      this.tracker.closeAfterResponse(c)
    } else {
      if (r === 'adopted') this.report.moved++
      else this.report.cut++
      this.tracker.conns.delete(c)
      c.socket.destroy()
    }
    this.#check()
  }

  #hardCap (): void {
    for (const c of this.tracker.conns) {
      if (this.#moving.has(c)) continue
      c.counted = true
      if (c.responding || c.upgraded) this.report.cut++
      c.socket.destroy()
    }
    for (const s of this.tracker.sessions) { this.report.cut++; s.destroy() }
  }

  #check (): void {
    if (this.#mode !== 'draining' || this.#done) return
    if (this.tracker.conns.size > 0 || this.tracker.sessions.size > 0 || this.#moving.size > 0) return
    this.#done = true
    void this.#finish()
  }

  async #finish (): Promise<void> {
    this.#unwatch()
    for (const t of this.#timers) clearTimeout(t)
    await (await this.#sender)?.close()
    await this.#incoming
    this.#resolveDrained(this.report)
    if (this.#p.exitOnDrain) setImmediate(() => process.exit(0))
  }
}
