/**
 * The server: listening sockets, client connections, and the timer that does background work
 * (expiry, compaction). One reply buffer and one command context serve all clients, because each
 * read is handled to its end before the next; each client has its own parser (see query.ts).
 */
import net from 'node:net'
import { createHash, timingSafeEqual } from 'node:crypto'
import { Conn, readReadyNow, type AdoptedClient, type ConnHost } from './conn.ts'
import { Ctx, type ServerView } from './commands/context.ts'
import { Databases, DEFAULT_DATABASES } from './databases.ts'
import { formatInfo, type InfoFacts, type ServerStats } from './info.ts'
import { Reply } from './reply.ts'
import { Store } from './store.ts'
import type { Allocator } from './segments.ts'
import { parseBytes } from './units.ts'
import { listenAddress } from './options.ts'
import { saveRdb, type RdbSaveReport } from './rdb/store.ts'
import { dispatch, lookup } from './commands/table.ts'
import { Watches } from './commands/multi.ts'
import { PubSub } from './commands/pubsub.ts'
import { Blocking } from './commands/blocking.ts'
import type { Hub } from './session.ts'
import { KeyspaceEvents } from './notify.ts'

export class KvServer implements ConnHost, ServerView {
  readonly dbs: Databases
  readonly ctx: Ctx
  commands = 0
  connectionsReceived = 0
  readonly conns = new Set<Conn>()
  readonly listeners: net.Server[] = []
  readonly stats: ServerStats
  readonly started = Date.now()
  private nextId = 1
  private timer: NodeJS.Timeout | null = null
  port = 0
  snapshotPath: string | null = null
  /** --rdb-out: written by SAVE and at shutdown. */
  rdbOutPath: string | null = null
  lastSave: RdbSaveReport | null = null
  /** SHA-256 of the requirepass, or null when there is none: the password itself is kept nowhere. */
  passHash: Buffer | null = null
  /** The addresses listened on (Redis's `bind`), for CONFIG GET and the start-up line. */
  bind: string[] = ['127.0.0.1']
  /** Watched keys, channels and blocked clients: per watched key, channel or waiter, never per stored key. */
  readonly hub: Hub = { watches: new Watches(), pubsub: new PubSub(), blocking: new Blocking(), keyspace: new KeyspaceEvents(this), dispatch, lookup }
  /** Settles when SHUTDOWN asked the server to stop (whoever runs the server awaits it beside SIGTERM). */
  readonly shutdownRequested: Promise<void>
  /** True once SHUTDOWN has saved (or was told not to): the shutdown path must not save again. */
  shutdownSaved = false
  private requestShutdown: () => void = () => {}
  /** The region the small query buffers were packed into for a handoff; released if it rolls back. */
  handoffPack: ArrayBuffer | null = null

  /** A Store alone is database 0 of DEFAULT_DATABASES. */
  constructor (data: Store | Databases, stats: Partial<ServerStats> = {}) {
    this.dbs = data instanceof Store ? new Databases(DEFAULT_DATABASES, { allocator: data.allocator, maxmemory: data.maxmemory, segmentSize: data.segmentSize }, data) : data
    this.ctx = new Ctx(this.dbs.db(0), new Reply(), this)
    this.stats = { generation: 1, lastDowntimeMs: null, upgrades: 0, inheritedCommands: 0, lastServedAtNs: null, ...stats }
    this.shutdownRequested = new Promise((resolve) => { this.requestShutdown = resolve })
  }

  shutdown (): void {
    this.shutdownSaved = true
    this.requestShutdown()
  }

  /** Database 0. */
  get store (): Store {
    return this.dbs.db(0)
  }

  get allocator (): Allocator {
    return this.store.allocator
  }

  get config (): Record<string, string> {
    return {
      maxmemory: String(this.dbs.maxmemory), save: '', appendonly: 'no', databases: String(this.dbs.count),
      port: String(this.port), bind: this.bind.join(' '), 'maxmemory-policy': 'noeviction',
      'notify-keyspace-events': this.hub.keyspace.text
    }
  }

  /** True when clients must AUTH: there is a password. */
  get requirePass (): boolean {
    return this.passHash !== null
  }

  /** Sets the password ('' or null: none), as `requirepass` does. */
  setPassword (password: string | null): void {
    this.passHash = password === null || password === '' ? null : sha256(Buffer.from(password))
  }

  /** AUTH's check: Redis's only user, `default`, with the requirepass (any password if there is none). */
  authenticate (user: string, password: Buffer): boolean {
    if (user !== 'default') return false
    return this.passHash === null || timingSafeEqual(sha256(password), this.passHash)
  }

  configSet (name: string, value: string): string | null {
    if (name === 'requirepass') {
      this.setPassword(value)
      return null
    }
    if (name === 'notify-keyspace-events') return this.hub.keyspace.configure(value)
    if (name !== 'maxmemory') return `ERR Unknown option or number of arguments for CONFIG SET - '${name}'`
    const n = parseBytes(value)
    if (n === null) return "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"
    this.dbs.maxmemory = n
    return null
  }

  flush (): void {
    this.dbs.flushAll()
  }

  /** SAVE: an RDB file to --snapshot and --rdb-out (each given). */
  save (): string | null {
    const paths = [this.snapshotPath, this.rdbOutPath].filter((p): p is string => p !== null)
    if (paths.length === 0) return 'ERR no RDB file: start pagegift-kv with --rdb-out <file> or --snapshot <file>'
    try {
      for (const p of new Set(paths)) this.lastSave = saveRdb(this, p)
      return null
    } catch (err) {
      return `ERR ${(err as Error).message}`
    }
  }

  /** At shutdown (not after handing off): writes --rdb-out, as Redis saves on SHUTDOWN. Returns an error message or null. */
  saveOnShutdown (): string | null {
    if (this.rdbOutPath === null || this.shutdownSaved) return null
    try {
      this.lastSave = saveRdb(this, this.rdbOutPath)
      process.stdout.write(`pagegift-kv: saved ${this.lastSave.keys} keys to ${this.rdbOutPath} in ${this.lastSave.ms.toFixed(1)} ms\n`)
      return null
    } catch (err) {
      return `pagegift-kv: could not save ${this.rdbOutPath}: ${(err as Error).message}`
    }
  }

  beginBatch (): void {
    this.dbs.setNow(Date.now())
  }

  /**
   * Listens on every `bind` address (127.0.0.1 by default), all on one port: with port 0, the one
   * the first address got. An address with a leading '-' is skipped if it is not available, as in Redis.
   */
  async listen (port: number, bind: string[] = ['127.0.0.1']): Promise<number> {
    this.bind = bind
    for (const entry of bind) {
      const { host, optional } = listenAddress(entry)
      const server = net.createServer()
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen({ port: this.listeners.length > 0 ? this.port : port, host, backlog: 4096 }, () => { server.off('error', reject); resolve() })
        })
      } catch (err) {
        if (optional && ['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes((err as { code?: string }).code ?? '')) continue
        throw err
      }
      this.adoptListener(server)
    }
    if (this.listeners.length === 0) throw new Error(`pagegift-kv: none of the bind addresses is available: ${bind.join(' ')}`)
    this.start()
    return this.port
  }

  /** Serves connections from a listening server (ours, or a predecessor's that listens at commit). */
  adoptListener (server: net.Server, port?: number): void {
    server.on('connection', (s: net.Socket) => this.addSocket(s))
    this.listeners.push(server)
    const addr = server.address()
    if (addr !== null && typeof addr === 'object') this.port = addr.port
    else if (port !== undefined) this.port = port
  }

  /** Starts background work (expiry, compaction): only once this process owns the data. */
  start (): void {
    this.startTimer()
  }

  /** A new client, or (with `adopted`) a predecessor's client, which stays frozen until `thaw`. */
  addSocket (socket: net.Socket, adopted?: AdoptedClient): Conn {
    this.connectionsReceived++
    const conn = new Conn(this.nextId++, socket, this, adopted)
    this.conns.add(conn)
    return conn
  }

  closed (conn: Conn): void {
    this.conns.delete(conn)
    this.hub.watches.unwatchAll(conn)
    this.hub.pubsub.drop(conn)
    if (conn.blocked !== null) this.hub.blocking.unblock(conn.blocked)
  }

  /** Stops background work and freezes every client at a command boundary. */
  freeze (): void {
    this.stopTimer()
    this.hub.blocking.freeze()
    for (const c of this.conns) c.freeze()
  }

  /** Undoes `freeze` after a handoff that failed; in a successor, starts serving adopted clients. */
  thaw (): void {
    this.hub.blocking.thaw()
    for (const c of this.conns) c.thaw()
    this.hub.blocking.serveReady(this.ctx)
    this.startTimer()
    // The clients' requests that waited through the pause run now, not at the next poll.
    readReadyNow()
  }

  info (section: string): string {
    const facts: InfoFacts = {
      dbs: this.dbs, stats: this.stats, port: this.port, started: this.started,
      clients: this.conns.size, blocked: this.hub.blocking.waiters().length, commands: this.commands + this.stats.inheritedCommands,
      connections: this.connectionsReceived,
      lastSave: this.lastSave
    }
    return formatInfo(section, facts)
  }

  /** Prints the line that tests and tools wait for. */
  announce (): void {
    const addr = this.listeners[0]?.address()
    const host = addr !== null && typeof addr === 'object' ? addr.address : '127.0.0.1'
    process.stdout.write(`pagegift-kv: generation ${this.stats.generation} serving on ${host}:${this.port} pid ${process.pid}\n`)
  }

  /** Closes listeners and clients. */
  async close (): Promise<void> {
    this.stopTimer()
    this.hub.keyspace.configure('')
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
    this.dbs.housekeeping(Date.now())
  }
}

function sha256 (b: Buffer): Buffer {
  return createHash('sha256').update(b).digest()
}
