/** Channel: gifts and control messages between two processes over one Unix SOCK_SEQPACKET socket. */
import { EventEmitter } from 'node:events'
import { PagegiftError, check } from './errors.ts'
import { GiftReceiver, type Gift, type ReceiveOptions } from './gift-receive.ts'
import { GiftSender, type GiftOptions, type GiftReceipt } from './gift-send.ts'
import { native } from './native.ts'
import type { GiftData } from './sources.ts'
import { Transport, closeFds } from './transport.ts'
import { MAX_FDS, Type, obj, type Decoded } from './wire.ts'

export interface Peer { pid: number, uid: number, gid: number }
export interface Message { msg: unknown, fds: number[] }

const MAX_QUEUED_MESSAGES = 1024

export class Channel extends EventEmitter {
  readonly #t: Transport
  readonly #sender: GiftSender
  readonly #receiver: GiftReceiver
  readonly #messages: Message[] = []
  readonly #waiting: Array<{ resolve: (m: Message) => void, reject: (err: Error) => void }> = []
  #closeError?: Error
  /** The process at the other end, from SO_PEERCRED (for a socketpair: the process that made it). */
  readonly peer: Peer

  /** Wraps a connected SOCK_SEQPACKET socket; the channel owns `fd` from now on. */
  constructor (fd: number) {
    super()
    const cred = native.peerCred(fd)
    this.peer = typeof cred === 'number' ? { pid: 0, uid: -1, gid: -1 } : { pid: cred[0], uid: cred[1], gid: cred[2] }
    this.#t = new Transport(fd, (m, fds) => this.#dispatch(m, fds), (err) => this.#closed(err))
    const peerPid = (): number => this.peer.pid
    this.#sender = new GiftSender(this.#t, peerPid)
    this.#receiver = new GiftReceiver(this.#t, peerPid)
  }

  /** Reopens an inherited channel end, such as fd 3 of a child spawned with the end in its stdio. */
  static fromFd (fd: number): Channel {
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`The "fd" argument must be a non-negative integer. Received ${fd}`)
    check(native.peerCred(fd) as number, 'getsockopt')
    return new Channel(fd)
  }

  /** The socket's fd, for handing this end to a child process (then close() it here). */
  get fd (): number { return this.#t.fd }
  get closed (): boolean { return this.#t.closed }

  /**
   * Gives buffers to the peer. They are detached here at once, whatever path the bytes take:
   * move (pages change owner, no copy) when they are giftable whole pages, else cma, splice or copy.
   */
  gift (data: GiftData, opts?: GiftOptions): Promise<GiftReceipt> {
    return this.#sender.gift(data, opts)
  }

  /** Takes the next gift, in the order they were given; `into` names memory of our own to fill. */
  receive (opts?: ReceiveOptions): Promise<Gift> {
    return this.#receiver.receive(opts)
  }

  /** Sends a JSON control message with optional fds; the kernel dups them, so the caller keeps its own. */
  async send (msg: unknown, fds: number[] = []): Promise<void> {
    if (!Array.isArray(fds) || fds.length > MAX_FDS || !fds.every((fd) => Number.isInteger(fd) && fd >= 0)) {
      throw new TypeError(`The "fds" argument must be an array of at most ${MAX_FDS} fds`)
    }
    await this.#t.send(Type.Message, { msg }, undefined, fds)
  }

  /** The next control message; its fds are the caller's to close or hand on. */
  recv (opts: { timeoutMs?: number } = {}): Promise<Message> {
    const queued = this.#messages.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    if (this.#closeError !== undefined) return Promise.reject(this.#closeError)
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject }
      this.#waiting.push(waiter)
      if (opts.timeoutMs !== undefined) {
        const timer = setTimeout(() => {
          const i = this.#waiting.indexOf(waiter)
          if (i >= 0) this.#waiting.splice(i, 1)
          reject(new PagegiftError('ERR_PAGEGIFT_TIMEOUT', `No message within ${opts.timeoutMs} ms`))
        }, opts.timeoutMs)
        waiter.resolve = (m) => { clearTimeout(timer); resolve(m) }
        waiter.reject = (e) => { clearTimeout(timer); reject(e) }
      }
    })
  }

  /** Closes the channel: pending gifts fail (handing their data back on the error), pending receives reject. */
  close (): void {
    // Small gifts given in this turn are still held back to share a message: they go first.
    this.#sender.flush()
    this.#t.close()
  }

  #dispatch (m: Decoded, fds: number[]): void {
    // The messages of a multi-message inline gift come back to back: the receiver takes (or refuses) them all.
    if (this.#receiver.filling) {
      this.#receiver.handle(m, fds)
      return
    }
    if (m.type === Type.Message) {
      let msg: unknown
      try {
        msg = obj(m.json, 'message').msg
      } catch (err) {
        closeFds(fds)
        throw err
      }
      const message = { msg, fds }
      const waiter = this.#waiting.shift()
      if (waiter !== undefined) {
        // Its reactions run once this poll callback returns: reading on first would only delay them.
        this.#t.yieldRead = true
        return waiter.resolve(message)
      }
      if (this.#messages.length >= MAX_QUEUED_MESSAGES) {
        closeFds(fds)
        throw new PagegiftError('ERR_PAGEGIFT_OVERFLOW', `The peer sent more than ${MAX_QUEUED_MESSAGES} messages that nobody received`)
      }
      this.#messages.push(message)
      return
    }
    if (this.#receiver.handle(m, fds)) return
    closeFds(fds)
    this.#sender.handle(m)
  }

  #closed (err: Error): void {
    this.#closeError = err
    this.#sender.abort(err)
    this.#receiver.abort(err)
    for (const w of this.#waiting.splice(0)) w.reject(err)
    this.emit('close', (err as PagegiftError).code === 'ERR_PAGEGIFT_CLOSED' ? undefined : err)
  }
}

/** A connected pair of channels in this process; give one end's `fd` to a child and close it here. */
export function channelPair (): [Channel, Channel] {
  const pair = native.seqpacketPair()
  if (typeof pair === 'number') check(pair, 'socketpair')
  const [a, b] = pair as [number, number, number]
  return [new Channel(a), new Channel(b)]
}
