/** listen() and connect(): channels between unrelated processes through a socket file. */
import { EventEmitter } from 'node:events'
import { lstatSync, unlinkSync } from 'node:fs'
import { constants } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { PagegiftError, SystemError, check } from './errors.ts'
import { Channel } from './channel.ts'
import { PollEvents, native, type PollHandle } from './native.ts'

export interface ListenOptions {
  /** Peers of these uids may connect too; by default only our own uid and root. */
  allowUids?: number[]
  backlog?: number
}

export interface ConnectOptions {
  /** How long to keep trying while the listener's backlog is full, in ms (default 5000). */
  timeoutMs?: number
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5000
/** Retries of a connect to a full backlog start this close together and spread out to the cap. */
const CONNECT_RETRY_MIN_MS = 1
const CONNECT_RETRY_MAX_MS = 50

// The addon returns -errno.
const EAGAIN = -constants.errno.EAGAIN
const ENOENT = -constants.errno.ENOENT
const ECONNREFUSED = -constants.errno.ECONNREFUSED
const EADDRINUSE = -constants.errno.EADDRINUSE
/** accept4 errors that concern one queued peer only. */
const PEER_GONE = new Set([constants.errno.ECONNABORTED, constants.errno.EPROTO, constants.errno.EPERM].map((e) => -e))
/** While accept4 fails for want of fds or memory, it is retried this often, backing off to the cap. */
const ACCEPT_RETRY_MIN_MS = 20
const ACCEPT_RETRY_MAX_MS = 1000

function unlinkIfSame (path: string, ino: number): void {
  try {
    if (lstatSync(path).ino === ino) unlinkSync(path)
  } catch {}
}

function pathArg (path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('The "path" argument must be a non-empty string')
  if (Buffer.byteLength(path) > 107) throw new RangeError(`The "path" argument is longer than a Unix socket path may be (107 bytes): ${path}`)
  return path
}

/**
 * A listening socket. Iterate it (`for await (const ch of server)`) or listen for 'connection'.
 * Peers of another uid are refused ('rejected' event) before any of their messages is read.
 * When accept fails for want of fds, 'rejected' reports it once; the peers wait in the backlog
 * and are accepted when fds free up.
 */
export class GiftServer extends EventEmitter implements AsyncIterable<Channel> {
  readonly path: string
  #fd: number
  #ino: number
  #poll: PollHandle
  #allowed: Set<number>
  #backlog: Channel[] = []
  #wake?: () => void
  #closed = false
  #retryTimer?: NodeJS.Timeout
  #retryMs = 0
  #short = false

  constructor (path: string, fd: number, allowed: Set<number>) {
    super()
    this.path = path
    this.#fd = fd
    this.#ino = lstatSync(path).ino
    this.#allowed = allowed
    const poll = native.pollStart(fd, PollEvents.Readable, () => this.#accept())
    if (typeof poll === 'number') throw new SystemError(poll, 'uv_poll_init')
    this.#poll = poll
  }

  #accept (): void {
    while (!this.#closed && this.#retryTimer === undefined) {
      const fd = native.accept(this.#fd)
      if (fd === EAGAIN) {
        // Only now is a shortage over: the kernel checks for a free fd before it looks at the backlog,
        // so an EMFILE right after a successful accept is the same shortage, not a new one to report.
        this.#short = false
        return
      }
      if (fd < 0 && PEER_GONE.has(fd)) continue // That one peer is gone; the next may be fine.
      if (fd < 0) {
        this.#pauseAccepting(new SystemError(fd, 'accept4'))
        return
      }
      this.#retryMs = 0
      const cred = native.peerCred(fd)
      if (typeof cred === 'number' || !this.#allowed.has(cred[1])) {
        native.close(fd)
        const who = typeof cred === 'number' ? 'unknown' : `uid ${cred[1]} (pid ${cred[0]})`
        this.emit('rejected', new PagegiftError('ERR_PAGEGIFT_PEER_REFUSED', `Refused a peer of ${who}: only uids ${[...this.#allowed].join(', ')} may connect`))
        continue
      }
      const ch = new Channel(fd)
      if (this.listenerCount('connection') > 0) {
        this.emit('connection', ch)
      } else {
        this.#backlog.push(ch)
        this.#wake?.()
      }
    }
  }

  /**
   * Out of fds (EMFILE, ENFILE) or memory: the socket stays readable, so polling on would spin.
   * Stop polling and look again after a delay that grows while the shortage lasts. The peer waits
   * in the kernel's backlog meanwhile (libuv's TCP accept would accept and drop it through a
   * reserve fd instead). The shortage is reported once, as a 'rejected' event, however many peers
   * get through it while fds free up one at a time.
   */
  #pauseAccepting (err: SystemError): void {
    const first = !this.#short
    this.#short = true
    this.#retryMs = Math.min(Math.max(this.#retryMs * 2, ACCEPT_RETRY_MIN_MS), ACCEPT_RETRY_MAX_MS)
    native.pollUpdate(this.#poll, 0)
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      native.pollUpdate(this.#poll, PollEvents.Readable)
      this.#accept()
    }, this.#retryMs)
    if (first) this.emit('rejected', err)
  }

  async * [Symbol.asyncIterator] (): AsyncIterator<Channel> {
    while (true) {
      const ch = this.#backlog.shift()
      if (ch !== undefined) {
        yield ch
        continue
      }
      if (this.#closed) return
      await new Promise<void>((resolve) => { this.#wake = resolve })
    }
  }

  /** Stops listening and removes the socket file (if it is still ours). Accepted channels stay open. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#retryTimer)
    native.pollClose(this.#poll)
    native.close(this.#fd)
    try {
      if (lstatSync(this.path).ino === this.#ino) unlinkSync(this.path)
    } catch {}
    this.#wake?.()
    this.emit('close')
  }
}

/**
 * Listens on a socket file created 0600. A stale file left by a dead process is replaced; a live
 * listener is never stolen (EADDRINUSE), and a path that is not a socket is never removed.
 */
export async function listen (path: string, opts: ListenOptions = {}): Promise<GiftServer> {
  pathArg(path)
  const allowed = new Set([process.getuid?.() ?? 0, 0, ...(opts.allowUids ?? [])])
  const backlog = opts.backlog ?? 128
  let fd = native.listen(path, backlog)
  // EADDRINUSE: a live listener (never stolen), or a stale file (replaced). A listener that is
  // shutting down can make the file vanish or refuse between our probes, so look again a few times.
  for (let attempt = 0; fd === EADDRINUSE && attempt < 5; attempt++) {
    let st
    try {
      st = lstatSync(path)
    } catch {
      fd = native.listen(path, backlog) // The file went away meanwhile: bind again.
      continue
    }
    if (!st.isSocket()) throw new SystemError(fd, 'bind', path, 'the path exists and is not a socket')
    // The probe never waits: a full backlog answers EAGAIN at once, and means that someone listens.
    const probe = native.connect(path)
    if (probe >= 0) native.close(probe)
    if (probe >= 0 || probe === EAGAIN) throw new SystemError(fd, 'bind', path, 'another process is listening there')
    if (probe === ECONNREFUSED) unlinkIfSame(path, st.ino) // Nobody listens: the file is stale.
    else if (probe !== ENOENT) throw new SystemError(probe, 'connect', path)
    fd = native.listen(path, backlog)
  }
  check(fd, 'bind', path)
  return new GiftServer(path, fd, allowed)
}

function timeoutArg (v: unknown): number {
  if (v === undefined) return DEFAULT_CONNECT_TIMEOUT_MS
  if (typeof v !== 'number' || !(v >= 0) || v > 2 ** 31 - 1) throw new RangeError(`The "opts.timeoutMs" argument must be a number of ms from 0 to 2^31-1. Received ${String(v)}`)
  return v
}

/**
 * Connects to a listen()ing process. A Unix connect completes at once unless the listener's
 * backlog is full (a stuck or busy listener): then the kernel would put a blocking connect to
 * sleep, and with it the event loop. So the socket is non-blocking, and a full backlog (EAGAIN)
 * is retried with a growing delay until `opts.timeoutMs`, then fails with
 * `ERR_PAGEGIFT_CONNECT_TIMEOUT` (its `cause` is the EAGAIN).
 */
export async function connect (path: string, opts: ConnectOptions = {}): Promise<Channel> {
  pathArg(path)
  const timeoutMs = timeoutArg(opts?.timeoutMs)
  const deadline = performance.now() + timeoutMs
  for (let delay = CONNECT_RETRY_MIN_MS; ; delay = Math.min(delay * 2, CONNECT_RETRY_MAX_MS)) {
    const fd = native.connect(path)
    if (fd >= 0) return new Channel(fd)
    if (fd !== EAGAIN) throw new SystemError(fd, 'connect', path)
    const left = deadline - performance.now()
    if (left <= 0) {
      const err = new PagegiftError('ERR_PAGEGIFT_CONNECT_TIMEOUT', `connect to '${path}' timed out after ${timeoutMs} ms: the listener's backlog stayed full (it is not accepting)`, { cause: new SystemError(fd, 'connect', path) })
      throw Object.assign(err, { path })
    }
    await sleep(Math.min(delay, left))
  }
}
