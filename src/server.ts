/** listen() and connect(): channels between unrelated processes through a socket file. */
import { EventEmitter } from 'node:events'
import { lstatSync, unlinkSync } from 'node:fs'
import { PagegiftError, SystemError, check } from './errors.ts'
import { Channel } from './channel.ts'
import { PollEvents, native, type PollHandle } from './native.ts'

export interface ListenOptions {
  /** Peers of these uids may connect too; by default only our own uid and root. */
  allowUids?: number[]
  backlog?: number
}

const EAGAIN = -11
const ENOENT = -2
const ECONNREFUSED = -111
const EADDRINUSE = -98

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
    while (!this.#closed) {
      const fd = native.accept(this.#fd)
      if (fd === EAGAIN) return
      if (fd < 0) {
        // EMFILE and friends: the connection stays queued; report it and try again on the next wakeup.
        this.emit('rejected', new SystemError(fd, 'accept4'))
        return
      }
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

/** Connects to a listen()ing process. */
export async function connect (path: string): Promise<Channel> {
  pathArg(path)
  const fd = native.connect(path)
  if (fd < 0) throw new SystemError(fd, 'connect', path)
  return new Channel(fd)
}
