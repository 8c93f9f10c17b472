/**
 * Moves framed messages and fds over one non-blocking SOCK_SEQPACKET socket, driven by uv_poll
 * readiness on the event loop. Knows nothing of gifts: it hands each checked message to `onMessage`.
 */
import { PagegiftError, SystemError } from './errors.ts'
import { MSG_CTRUNC, MSG_TRUNC, PollEvents, errno, native, type PollHandle } from './native.ts'
import { MAX_FDS, MAX_MESSAGE, decode, encode, encodeText, protocolError, type Decoded, type Type } from './wire.ts'

const { EAGAIN, EPIPE } = errno
const WATCH = PollEvents.Readable | PollEvents.Disconnect
const MAX_READS_PER_WAKEUP = 256

export interface Outgoing { views: Uint8Array[], fds: number[], done: (err?: Error) => void }

export function closeFds (fds: Iterable<number>): void {
  for (const fd of fds) native.close(fd)
}

export class Transport {
  readonly fd: number
  closed = false
  #poll: PollHandle
  /** The events #poll watches now: changing them is a syscall, so only a change makes one. */
  #watching = WATCH
  #paused = false
  #queue: Outgoing[] = []
  #recvBuf = new Uint8Array(MAX_MESSAGE + 1)
  #recvOut = new Int32Array(2 + MAX_FDS)
  #onMessage: (m: Decoded, fds: number[]) => void
  #onClose: (err: Error) => void
  /**
   * Runs before anything is sent: the writer's pending small gifts (held back
   * to share one message) go out first, so that messages keep the order they were given in.
   */
  beforeSend?: () => void
  /**
   * Set by a message handler that settled a waiting receive, recv() or a receive's wait for a reply:
   * the read loop returns to the event loop at once, so the waiter's reactions run before the next
   * (often empty) recvmsg, which costs ~2 µs here. The poll is level-triggered, so whatever else
   * waits in the socket is read in the next callback.
   */
  yieldRead = false

  /** Takes ownership of `fd`. `onMessage` owns the fds it is given: it closes or keeps each one. */
  constructor (fd: number, onMessage: (m: Decoded, fds: number[]) => void, onClose: (err: Error) => void) {
    this.fd = fd
    this.#onMessage = onMessage
    this.#onClose = onClose
    const poll = native.pollStart(fd, WATCH, (status, events) => this.#onPoll(status, events))
    if (typeof poll === 'number') {
      native.close(fd)
      throw new SystemError(poll, 'uv_poll_init')
    }
    this.#poll = poll
  }

  /**
   * Sends one message; resolves once the kernel has it, and calls `onSent` synchronously then. The
   * kernel dups `fds`: the caller keeps its own. `data` may be several views, sent as one message's
   * iovecs (no copy here).
   */
  send (type: Type, json: unknown, data?: Uint8Array | Uint8Array[], fds: number[] = [], onSent?: () => void): Promise<void> {
    return this.sendWithdrawable(type, json, data, fds, onSent).sent
  }

  /**
   * As send(), with `withdraw()`: takes the message back if it is still queued here (the socket was
   * full), and says whether it did. A SEQPACKET message goes whole or not at all, so a queued one
   * has sent nothing yet.
   */
  sendWithdrawable (type: Type, json: unknown, data?: Uint8Array | Uint8Array[], fds: number[] = [], onSent?: () => void): { sent: Promise<void>, withdraw: () => boolean } {
    return this.sendText(type, undefined, json, data, fds, onSent)
  }

  /**
   * As sendWithdrawable(), with the JSON part given as text when `text` is set (the caller built it,
   * e.g. around a meta it has serialised once already), else serialised from `json`.
   */
  sendText (type: Type, text: string | undefined, json: unknown, data?: Uint8Array | Uint8Array[], fds: number[] = [], onSent?: () => void): { sent: Promise<void>, withdraw: () => boolean } {
    let resolve: () => void = () => {}
    let reject: (err: Error) => void = () => {}
    const sent = new Promise<void>((res, rej) => { resolve = res; reject = rej })
    const m = this.post(type, text, json, data, fds, (err) => {
      if (err !== undefined) return reject(err)
      onSent?.()
      resolve()
    })
    return { sent, withdraw: () => m !== undefined && this.withdraw(m) }
  }

  /**
   * The callback form under the sends, for the paths that send per small gift (no promise, no
   * closure of ours per message): `done` runs once, with no argument once the kernel has the
   * message (at once when the socket has room), or with the error that keeps it from being sent
   * (at once when the channel is closed or the message cannot be encoded). Returns the queued
   * message, for withdraw(), or undefined when `done` has run already.
   */
  post (type: Type, text: string | undefined, json: unknown, data: Uint8Array | Uint8Array[] | undefined, fds: number[], done: (err?: Error) => void): Outgoing | undefined {
    this.beforeSend?.()
    if (this.closed) {
      done(new PagegiftError('ERR_PAGEGIFT_CLOSED', 'The channel is closed'))
      return undefined
    }
    let parts = data === undefined ? [] : Array.isArray(data) ? data.filter((d) => d.byteLength > 0) : data.byteLength > 0 ? [data] : []
    // The addon's sendmsg takes at most MAX_SEND_VIEWS views, the header's included: more parts
    // (an inline gift of many small buffers) are joined into one, at most a message's bytes.
    if (parts.length > MAX_SEND_VIEWS - 1) parts = [joined(parts)]
    let header: Uint8Array
    try {
      let length = 0
      for (const d of parts) length += d.byteLength
      header = text !== undefined ? encodeText(type, text, length, fds.length) : encode(type, json, length, fds.length)
    } catch (err) {
      done(err as Error)
      return undefined
    }
    parts.unshift(header)
    const m: Outgoing = { views: parts, fds, done }
    this.#queue.push(m)
    if (this.#queue.length === 1) this.#flush()
    return this.#queue.length > 0 && this.#queue.includes(m) ? m : undefined
  }

  /**
   * Takes a message back if it is still queued here (the socket was full), and says whether it
   * did. A SEQPACKET message goes whole or not at all, so a queued one has sent nothing yet.
   */
  withdraw (m: Outgoing): boolean {
    const i = this.#queue.indexOf(m)
    if (i < 0) return false
    this.#queue.splice(i, 1)
    return true
  }

  #flush (): void {
    while (this.#queue.length > 0 && !this.closed) {
      const m = this.#queue[0]
      const n = native.sendmsg(this.fd, m.views, m.fds)
      if (n === EAGAIN) {
        this.#watch(true)
        return
      }
      if (n < 0) {
        this.close(peerGone(n, 'sendmsg'))
        return
      }
      this.#queue.shift()
      // At once, not in a promise reaction: a reply to this message may be read in this same poll callback.
      m.done()
    }
    if (!this.closed) this.#watch(false)
  }

  /**
   * Stops reading until resume(): what the peer sends then waits in the kernel's buffer, and once
   * that is full its sends wait too. The reader's queue of unreceived gifts stays bounded this way
   * without failing a peer that is only faster than us.
   */
  pause (): void {
    if (this.#paused) return
    this.#paused = true
    this.#watch(this.#queue.length > 0)
  }

  /** Reads again (from the next poll callback: level-triggered, so nothing waiting is missed). */
  resume (): void {
    if (!this.#paused || this.closed) return
    this.#paused = false
    this.#watch(this.#queue.length > 0)
  }

  #watch (writable: boolean): void {
    const events = (this.#paused ? 0 : WATCH) | (writable ? PollEvents.Writable : 0)
    if (events === this.#watching) return
    this.#watching = events
    native.pollUpdate(this.#poll, events)
  }

  #onPoll (status: number, events: number): void {
    if (this.closed) return
    if (status < 0) {
      // libuv reports POLLERR as EBADF; on a Unix socket that means the peer is gone. Read what is left first.
      this.#read(false)
      this.close(peerGone(EPIPE, 'uv_poll'))
      return
    }
    if ((events & PollEvents.Writable) !== 0) this.#flush()
    // UV_DISCONNECT comes with EOF: reading finds it.
    if ((events & WATCH) !== 0) this.#read(true)
  }

  /** Reads and dispatches what the socket holds now, without waiting for the next poll callback. */
  drain (): void {
    if (!this.closed) this.#read(false)
  }

  #read (yieldable: boolean): void {
    for (let i = 0; i < MAX_READS_PER_WAKEUP && !this.closed && !this.#paused; i++) {
      const n = native.recvmsg(this.fd, this.#recvBuf, this.#recvOut)
      if (n === EAGAIN) return
      if (n < 0) {
        this.close(peerGone(n, 'recvmsg'))
        return
      }
      const fds = this.#recvOut[0] === 0 ? [] : Array.from(this.#recvOut.subarray(2, 2 + this.#recvOut[0]))
      if (n === 0 && fds.length === 0) {
        this.close(new PagegiftError('ERR_PAGEGIFT_PEER_CLOSED', 'The peer closed the channel (or its process exited)'))
        return
      }
      let message: Decoded
      try {
        if ((this.#recvOut[1] & MSG_TRUNC) !== 0 || n > MAX_MESSAGE) throw protocolError('packet larger than the maximum message')
        if ((this.#recvOut[1] & MSG_CTRUNC) !== 0) throw protocolError(`more than ${MAX_FDS} fds in one message`)
        message = decode(this.#recvBuf, n, fds.length)
      } catch (err) {
        closeFds(fds)
        this.close(err as Error)
        return
      }
      try {
        this.#onMessage(message, fds)
      } catch (err) {
        this.close(err as Error)
        return
      }
      if (this.yieldRead) {
        this.yieldRead = false
        if (yieldable) return
      }
    }
  }

  /** Closes the socket; every queued send is rejected with `err`. Idempotent. */
  close (err: Error = new PagegiftError('ERR_PAGEGIFT_CLOSED', 'The channel was closed')): void {
    if (this.closed) return
    this.closed = true
    native.pollClose(this.#poll)
    native.close(this.fd)
    for (const m of this.#queue.splice(0)) m.done(err)
    this.#onClose(err)
  }
}

/** The views the addon's sendmsg takes at most (native/binding.c). */
const MAX_SEND_VIEWS = 8

/** The bytes of `parts`, one after another, in one new buffer. */
export function joined (parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.byteLength
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

function peerGone (errno: number, syscall: string): Error {
  const sys = new SystemError(errno, syscall)
  if (sys.code === 'EPIPE' || sys.code === 'ECONNRESET') {
    return new PagegiftError('ERR_PAGEGIFT_PEER_CLOSED', 'The peer closed the channel (or its process exited)', { cause: sys })
  }
  return sys
}
