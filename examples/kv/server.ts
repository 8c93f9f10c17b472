/**
 * The server: listening sockets, client connections, and the timer that does background work
 * (expiry, compaction). One parser, one reply buffer and one command context serve all clients,
 * because each read is handled to its end before the next.
 */
import net from 'node:net'
import { Conn, type ConnHost } from './conn.ts'
import { Ctx, type ServerView } from './commands/context.ts'
import { Compactor } from './compactor.ts'
import { ExpirySweeper } from './expiry.ts'
import { formatInfo, type InfoFacts } from './info.ts'
import { Reply } from './reply.ts'
import { RespParser } from './resp.ts'
import type { Store } from './store.ts'
import { parseBytes } from './units.ts'

export interface ServerStats {
  generation: number
  /** Downtime of the last live upgrade, ms, or null. */
  lastDowntimeMs: number | null
  upgrades: number
  /** Commands served by earlier generations. */
  inheritedCommands: number
}

export class KvServer implements ConnHost, ServerView {
  store: Store
  readonly parser = new RespParser()
  readonly ctx: Ctx
  commands = 0
  connectionsReceived = 0
  readonly conns = new Set<Conn>()
  readonly listeners: net.Server[] = []
  readonly stats: ServerStats
  readonly compactor: Compactor
  readonly sweeper: ExpirySweeper
  readonly started = Date.now()
  private nextId = 1
  private timer: NodeJS.Timeout | null = null
  port = 0

  constructor (store: Store, stats: Partial<ServerStats> = {}) {
    this.store = store
    this.ctx = new Ctx(store, new Reply(), this)
    this.stats = { generation: 1, lastDowntimeMs: null, upgrades: 0, inheritedCommands: 0, ...stats }
    this.compactor = new Compactor(store)
    this.sweeper = new ExpirySweeper(store)
  }

  get config (): Record<string, string> {
    return {
      maxmemory: String(this.store.maxmemory), save: '', appendonly: 'no', databases: '1',
      port: String(this.port), bind: '127.0.0.1', 'maxmemory-policy': 'noeviction'
    }
  }

  configSet (name: string, value: string): string | null {
    if (name !== 'maxmemory') return `ERR Unknown option or number of arguments for CONFIG SET - '${name}'`
    const n = parseBytes(value)
    if (n === null) return "ERR Invalid argument '" + value + "' for CONFIG SET 'maxmemory'"
    this.store.maxmemory = n
    return null
  }

  flush (): void {
    this.store.flush()
  }

  beginBatch (): void {
    this.store.now = Date.now()
  }

  /** Listens on host:port (127.0.0.1 by default); resolves with the port. */
  async listen (port: number, host = '127.0.0.1'): Promise<number> {
    const server = net.createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ port, host, backlog: 4096 }, () => { server.off('error', reject); resolve() })
    })
    this.adoptListener(server)
    return this.port
  }

  /** Serves connections from an already listening server (ours or a predecessor's). */
  adoptListener (server: net.Server): void {
    server.on('connection', (s: net.Socket) => this.addSocket(s))
    this.listeners.push(server)
    const addr = server.address()
    if (addr !== null && typeof addr === 'object') this.port = addr.port
    this.startTimer()
  }

  addSocket (socket: net.Socket, pending?: Buffer): Conn {
    this.connectionsReceived++
    const conn = new Conn(this.nextId++, socket, this, pending)
    this.conns.add(conn)
    return conn
  }

  closed (conn: Conn): void {
    this.conns.delete(conn)
  }

  /** Stops background work and freezes every client at a command boundary. */
  freeze (): Map<Conn, Buffer> {
    this.stopTimer()
    const pending = new Map<Conn, Buffer>()
    for (const c of this.conns) pending.set(c, c.freeze())
    return pending
  }

  /** Undoes `freeze` after a handoff that failed. */
  thaw (): void {
    for (const c of this.conns) c.thaw()
    this.startTimer()
  }

  /** Resolves when every client's replies have left our buffers (or after `timeoutMs`). */
  async drained (timeoutMs = 1000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      let waiting = false
      for (const c of this.conns) if (c.socket.writableLength > 0 && !c.socket.destroyed) waiting = true
      if (!waiting || Date.now() > deadline) return
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  info (section: string): string {
    const facts: InfoFacts = {
      store: this.store, stats: this.stats, port: this.port, started: this.started,
      clients: this.conns.size, commands: this.commands + this.stats.inheritedCommands,
      connections: this.connectionsReceived, compactor: this.compactor, expired: this.sweeper.expired
    }
    return formatInfo(section, facts)
  }

  /** Closes listeners and clients. */
  async close (): Promise<void> {
    this.stopTimer()
    for (const c of this.conns) c.socket.destroy()
    await Promise.all(this.listeners.map(async (s) => await new Promise((resolve) => s.close(resolve))))
  }

  private startTimer (): void {
    if (this.timer !== null) return
    this.timer = setInterval(() => this.housekeeping(), 10)
    this.timer.unref()
  }

  private stopTimer (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  /** Background work, time-boxed so clients never wait long for it. */
  private housekeeping (): void {
    this.store.now = Date.now()
    this.sweeper.sweep(4096)
    this.compactor.step(2)
  }
}
