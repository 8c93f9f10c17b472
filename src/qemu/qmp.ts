/**
 * A small QMP (QEMU Machine Protocol) client: newline-delimited JSON over a Unix socket.
 *
 * QEMU opens with a greeting, then accepts commands only after `qmp_capabilities`. Replies carry
 * the `id` of their command, so several commands may be in flight and each gets its own reply.
 * Asynchronous events arrive interleaved with replies and carry QEMU's wall-clock timestamp; they
 * are kept in a log so a caller can wait for an event that may already have arrived.
 * Every wait has a timeout, and an error reply becomes a QemuError with code ERR_QMP_COMMAND.
 */
import { EventEmitter } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import { QemuError } from './errors.ts'

export interface QmpVersion { major: number, minor: number, micro: number, package: string }

export interface QmpEvent {
  event: string
  data: Record<string, unknown>
  /** QEMU's timestamp of the event, in milliseconds since the epoch (microsecond resolution). */
  timeMs: number
  /** The position of this event among all events of this connection, counting from 0. */
  seq: number
}

export interface QmpOptions {
  /** Timeout for connecting and for the greeting, in ms (default 5000). */
  timeoutMs?: number
}

interface Pending { resolve (value: unknown): void, reject (err: Error): void, timer: NodeJS.Timeout, command: string }

const DEFAULT_TIMEOUT_MS = 5000
/** QMP lines are small; a line this long means the peer is not QEMU or is broken. */
const MAX_LINE_BYTES = 16 * 1024 * 1024
/** Events are kept so that a waiter can find one that arrived first; old ones are dropped. */
const MAX_EVENTS = 1000

export class QmpClient extends EventEmitter<{ event: [QmpEvent], close: [] }> {
  readonly version: QmpVersion
  /** Every event received so far (the most recent MAX_EVENTS), oldest first. */
  readonly events: QmpEvent[] = []
  #socket: Socket
  #pending = new Map<number, Pending>()
  #nextId = 1
  #closed = false
  #eventCount = 0

  private constructor (socket: Socket, version: QmpVersion, rest: string) {
    super()
    this.version = version
    this.#socket = socket
    let buffered = rest
    socket.on('data', (chunk: string) => {
      buffered += chunk
      if (buffered.length > MAX_LINE_BYTES) {
        this.#fail(new QemuError('ERR_QMP_PROTOCOL', 'QMP peer sent an over-long line'))
        return
      }
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim()
        buffered = buffered.slice(nl + 1)
        if (line !== '') this.#onLine(line)
      }
    })
    socket.on('error', (err) => this.#fail(new QemuError('ERR_QMP_CLOSED', `QMP socket error: ${err.message}`, { cause: err })))
    socket.on('close', () => this.#fail(new QemuError('ERR_QMP_CLOSED', 'QMP connection closed')))
    socket.resume()
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect (path: string, options: QmpOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const socket = netConnect({ path })
    socket.setEncoding('utf8')
    const { greeting, rest } = await readGreeting(socket, path, timeoutMs)
    const client = new QmpClient(socket, greeting, rest)
    try {
      await client.execute('qmp_capabilities', undefined, { timeoutMs })
    } catch (err) {
      client.close()
      throw err
    }
    return client
  }

  get closed (): boolean { return this.#closed }

  /** The `seq` the next event will get; pass it as `since` to wait only for later events. */
  get nextEventSeq (): number { return this.#eventCount }

  /** Runs a command and resolves with its `return` value; rejects on an error reply or timeout. */
  async execute<T = unknown> (command: string, args?: Record<string, unknown>, options: QmpOptions = {}): Promise<T> {
    if (this.#closed) throw new QemuError('ERR_QMP_CLOSED', `QMP connection closed before '${command}'`)
    const id = this.#nextId++
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new QemuError('ERR_QMP_TIMEOUT', `QMP command '${command}' got no reply within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, command })
      const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }
      this.#socket.write(JSON.stringify(message) + '\n')
    })
  }

  /**
   * Resolves with the first event named `name` (and accepted by `match`) whose seq is at least
   * `since` (0 means "any event so far"), waiting up to `timeoutMs` for it to arrive.
   */
  async waitEvent (name: string, options: { timeoutMs?: number, since?: number, match?: (data: Record<string, unknown>) => boolean } = {}): Promise<QmpEvent> {
    const wanted = (e: QmpEvent): boolean => e.event === name && e.seq >= (options.since ?? 0) && (options.match?.(e.data) ?? true)
    const seen = this.events.find(wanted)
    if (seen !== undefined) return seen
    if (this.#closed) throw new QemuError('ERR_QMP_CLOSED', `QMP connection closed while waiting for event ${name}`)
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    return await new Promise<QmpEvent>((resolve, reject) => {
      const cleanup = (): void => { clearTimeout(timer); this.off('event', onEvent); this.off('close', onClose) }
      const onEvent = (e: QmpEvent): void => { if (wanted(e)) { cleanup(); resolve(e) } }
      const onClose = (): void => { cleanup(); reject(new QemuError('ERR_QMP_CLOSED', `QMP connection closed while waiting for event ${name}`)) }
      const timer = setTimeout(() => { cleanup(); reject(new QemuError('ERR_QMP_TIMEOUT', `no QMP event ${name} within ${timeoutMs} ms`)) }, timeoutMs)
      this.on('event', onEvent)
      this.on('close', onClose)
    })
  }

  /** Closes the connection; commands still in flight reject with ERR_QMP_CLOSED. */
  close (): void {
    this.#socket.destroy()
    this.#fail(new QemuError('ERR_QMP_CLOSED', 'QMP connection closed by the client'))
  }

  #onLine (line: string): void {
    let msg: Record<string, unknown>
    try {
      msg = JSON.parse(line) as Record<string, unknown>
    } catch (err) {
      this.#fail(new QemuError('ERR_QMP_PROTOCOL', `QMP peer sent invalid JSON: ${line.slice(0, 200)}`, { cause: err }))
      return
    }
    if (typeof msg.event === 'string') {
      const ts = msg.timestamp as { seconds?: number, microseconds?: number } | undefined
      const event: QmpEvent = {
        event: msg.event,
        data: (msg.data ?? {}) as Record<string, unknown>,
        timeMs: (ts?.seconds ?? 0) * 1000 + (ts?.microseconds ?? 0) / 1000,
        seq: this.#eventCount++,
      }
      this.events.push(event)
      if (this.events.length > MAX_EVENTS) this.events.shift()
      this.emit('event', event)
      return
    }
    const pending = typeof msg.id === 'number' ? this.#pending.get(msg.id) : undefined
    if (pending === undefined) return
    this.#pending.delete(msg.id as number)
    clearTimeout(pending.timer)
    if ('error' in msg) {
      const e = msg.error as { class?: string, desc?: string }
      pending.reject(new QemuError('ERR_QMP_COMMAND', `QMP '${pending.command}' failed: ${e.desc ?? 'unknown error'}`, { qmpClass: e.class ?? 'GenericError' }))
    } else {
      pending.resolve(msg.return)
    }
  }

  #fail (err: QemuError): void {
    if (this.#closed) return
    this.#closed = true
    this.#socket.destroy()
    for (const p of this.#pending.values()) { clearTimeout(p.timer); p.reject(err) }
    this.#pending.clear()
    this.emit('close')
  }
}

/** Reads the `{"QMP": ...}` greeting line; any bytes after it are handed back unparsed. */
async function readGreeting (socket: Socket, path: string, timeoutMs: number): Promise<{ greeting: QmpVersion, rest: string }> {
  return await new Promise((resolve, reject) => {
    let buffered = ''
    const done = (err: Error | undefined, value?: { greeting: QmpVersion, rest: string }): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('error', onError)
      socket.off('close', onClose)
      // Hold further bytes in the stream until the client's own listener is attached.
      socket.pause()
      if (err !== undefined) { socket.destroy(); reject(err) } else resolve(value as { greeting: QmpVersion, rest: string })
    }
    const onData = (chunk: string): void => {
      buffered += chunk
      const nl = buffered.indexOf('\n')
      if (nl < 0) {
        if (buffered.length > MAX_LINE_BYTES) done(new QemuError('ERR_QMP_PROTOCOL', `${path}: over-long greeting`))
        return
      }
      try {
        const msg = JSON.parse(buffered.slice(0, nl)) as { QMP?: { version?: { qemu?: Omit<QmpVersion, 'package'>, package?: string } } }
        const v = msg.QMP?.version
        if (v?.qemu === undefined) throw new Error('no QMP version in the greeting')
        done(undefined, { greeting: { ...v.qemu, package: v.package ?? '' }, rest: buffered.slice(nl + 1) })
      } catch (err) {
        done(new QemuError('ERR_QMP_PROTOCOL', `${path} is not a QMP socket: ${(err as Error).message}`, { cause: err }))
      }
    }
    const onError = (err: NodeJS.ErrnoException): void => done(new QemuError('ERR_QMP_CLOSED', `cannot connect to QMP socket ${path}: ${err.message}`, { cause: err }))
    const onClose = (): void => done(new QemuError('ERR_QMP_CLOSED', `QMP socket ${path} closed before the greeting`))
    const timer = setTimeout(() => done(new QemuError('ERR_QMP_TIMEOUT', `no QMP greeting from ${path} within ${timeoutMs} ms`)), timeoutMs)
    socket.on('data', onData)
    socket.on('error', onError)
    socket.on('close', onClose)
  })
}
