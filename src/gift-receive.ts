/**
 * The reader's half of the gift protocol. Offers queue in order; receive() takes the head one and
 * walks the path ladder (move > cma > splice > copy), asking the writer for each fallback in turn.
 */
import { PagegiftError, SystemError } from './errors.ts'
import { timeoutArg } from './gift-send.ts'
import { native } from './native.ts'
import { allocReceive, release, mapExtents, moveInto, regionOf, type Region } from './pages.ts'
import { dropChunked, fillChunk, isChunked, parseBatch, parseInline, startChunked, takeInline, type Filling } from './gift-inline.ts'
import { parseCma, parseOffer, planMove, unsealed, type Move, type Offer } from './offer.ts'
import { Cancel, pull, pump, scatter, spansOf } from './pump.ts'
import { MAX_BUFFERS, PATHS, type Gift, type GiftPath } from './sources.ts'
import { closeFds, type Transport } from './transport.ts'
import { INLINE_MAX, MAX_BATCH, Type, obj, protocolError, str, uint, type Decoded } from './wire.ts'

export type { Gift } from './sources.ts'

export interface ReceiveOptions {
  /** Memory of the reader's own to receive into (the RFC's reader iovec); filled in order. */
  into?: ArrayBufferView | ArrayBufferView[]
  /**
   * Fail with ERR_PAGEGIFT_TIMEOUT when no gift has been received within this many ms (from the
   * call, waiting included). A gift already taken off the queue then fails on both sides.
   */
  timeoutMs?: number
}

interface Inbox {
  id: number
  items: Array<{ m: Decoded, fds: number[] }>
  wake?: () => void
  /** Takes Data chunks at once: they live in the transport's receive buffer only until it reads again. */
  sink?: (data: Uint8Array) => void
}

const FALLBACK_ERRNOS = new Set(['EPERM', 'EACCES', 'ENOSYS', 'EINVAL'])
/**
 * Offers queued unreceived at which the channel stops reading (Transport.pause), and below which it
 * reads again: a writer faster than our receive() calls then waits on the socket, as a stream
 * socket's does. At most one message more is read after the pause, so past MAX_QUEUED_OFFERS (a
 * message's worth of offers beyond the pause) only a peer that ignores it could get, and fails.
 */
const PAUSE_OFFERS = 1024
const RESUME_OFFERS = PAUSE_OFFERS / 2
const MAX_QUEUED_OFFERS = PAUSE_OFFERS + MAX_BATCH
/** Memfds held by queued offers before the peer counts as flooding us. */
const MAX_QUEUED_OFFER_FDS = 1024
/**
 * Bytes of multi-message inline gifts queued unreceived at which the channel stops reading, and
 * reads again below half of it (one-message inline gifts are bounded by the offer count). Each such
 * gift is over 64 KiB and holds a receive-pool memfd, so this also keeps their fds under 256.
 */
const PAUSE_BYTES = 16 << 20

function overflow (): PagegiftError {
  return new PagegiftError('ERR_PAGEGIFT_OVERFLOW', `The peer queued more than ${MAX_QUEUED_OFFERS} gifts or ${MAX_QUEUED_OFFER_FDS} fds that nobody received`)
}

export class GiftReceiver {
  #t: Transport
  #peerPid: () => number
  #offers: Offer[] = []
  #wake: Array<() => void> = []
  #chain: Promise<unknown> = Promise.resolve()
  #inbox?: Inbox
  #closed?: Error
  #active?: Cancel
  /** Receives called and not yet settled. */
  #running = 0
  /** The receive that waits to be handed the next offer, when it is the only one (#await). */
  #direct?: { resolve: (g: Gift) => void, reject: (err: Error) => void, cancel: Cancel }
  /** A multi-message inline gift still arriving: the next message must be its next chunk. */
  #filling?: Filling
  /** Bytes of multi-message inline gifts queued unreceived. */
  #heldBytes = 0

  /** True while a multi-message inline gift arrives: every message is then its chunk, or an error. */
  get filling (): boolean { return this.#filling !== undefined }

  constructor (t: Transport, peerPid: () => number) {
    this.#t = t
    this.#peerPid = peerPid
  }

  /** Handles a message addressed to the reader; returns false when it is not one. Owns `fds`. */
  handle (m: Decoded, fds: number[]): boolean {
    if (this.#filling !== undefined) {
      if (fillChunk(this.#filling, m, fds)) {
        this.#queued()
        const offer = this.#filling.offer
        this.#filling = undefined
        this.#heldBytes += offer.total
        this.#offers.push(offer)
        this.#arrived()
      }
      return true
    }
    if (m.type === Type.Offer || m.type === Type.Inline || m.type === Type.Batch) {
      // Inline offers hold no fds: only an offer with fds can take the count of held fds over.
      const held = fds.length === 0 ? 0 : this.#offers.reduce((n, o) => n + o.memfds.length, 0)
      if (this.#offers.length >= MAX_QUEUED_OFFERS || held + fds.length > MAX_QUEUED_OFFER_FDS) {
        closeFds(fds)
        throw overflow()
      }
      if (m.type === Type.Batch) {
        const offers = parseBatch(m.json, m.data, fds)
        if (this.#offers.length + offers.length > MAX_QUEUED_OFFERS) throw overflow()
        for (const o of offers) this.#offers.push(o)
      } else if (m.type === Type.Inline && isChunked(m.json)) {
        // Queued once its last chunk is in: nothing else can come between them.
        this.#filling = startChunked(m.json, m.data, fds)
        return true
      } else {
        this.#offers.push(m.type === Type.Inline ? parseInline(m.json, m.data, fds) : parseOffer(m.json, fds))
      }
      this.#arrived()
      return true
    }
    if (m.type !== Type.Data && m.type !== Type.Splice && m.type !== Type.Cma && m.type !== Type.Skip && m.type !== Type.Fail) return false
    // Only a Splice reply carries an fd (exactly one); whatever else came along is closed here.
    if (m.type !== Type.Splice || fds.length !== 1) {
      closeFds(fds)
      if (m.type === Type.Splice) throw protocolError(`a splice reply with ${fds.length} fds instead of 1`)
      fds = []
    }
    let id: number
    try {
      id = uint(obj(m.json, 'message').id, 'id')
    } catch (err) {
      closeFds(fds)
      throw err
    }
    if (this.#inbox?.id !== id) {
      closeFds(fds) // A late message for a gift that has already ended on this side.
      return true
    }
    if (m.type === Type.Data) {
      if (this.#inbox.sink === undefined) throw protocolError('data that was not asked for')
      this.#inbox.sink(m.data)
      return true
    }
    this.#inbox.items.push({ m, fds })
    if (this.#inbox.wake !== undefined) {
      // The receive that waits for this reply goes on before the next read (see yieldRead).
      this.#t.yieldRead = true
      this.#inbox.wake()
    }
    return true
  }

  receive (opts: ReceiveOptions = {}): Promise<Gift> {
    const targets = intoArg(opts)
    const timeoutMs = timeoutArg(opts.timeoutMs, 'opts.timeoutMs')
    // An inline gift already here, with no receive before this one: it is taken at once, without
    // the queue of receives (a stream of small gifts takes most of them this way).
    if (this.#running === 0 && targets === undefined && this.#offers[0]?.inline !== undefined) {
      const offer = this.#taken()
      return Promise.resolve(takeInline(offer, offer.inline as ArrayBuffer[], undefined))
    }
    const cancel = new Cancel()
    const timer = timeoutMs === undefined
      ? undefined
      : setTimeout(() => cancel.cancel(new PagegiftError('ERR_PAGEGIFT_TIMEOUT', `No gift was received within ${timeoutMs} ms`)), timeoutMs)
    if (this.#running === 0 && targets === undefined && this.#offers.length === 0 && this.#closed === undefined) return this.#await(cancel, timer)
    const prev = this.#chain
    const run = (async () => {
      try {
        await cancel.race(prev)
        return await this.#receiveOne(targets, cancel)
      } finally {
        clearTimeout(timer)
      }
    })()
    // Receives run one at a time, in call order, even when one gives up waiting for the one before.
    this.#chain = Promise.all([prev, run.catch(() => {})])
    this.#running++
    const settled = (): void => { this.#running-- }
    run.then(settled, settled)
    return run
  }

  /**
   * The one receive, with nothing queued: it waits to be handed the next offer by handle(), so an
   * inline gift resolves it straight from the message, without the queue of receives. Receives
   * called meanwhile queue behind it as usual.
   */
  #await (cancel: Cancel, timer: NodeJS.Timeout | undefined): Promise<Gift> {
    const handed = new Promise<Gift>((resolve, reject) => { this.#direct = { resolve, reject, cancel } })
    // Without a timer only abort() ends the wait, and it rejects #direct itself: no race to run.
    const run = timer === undefined ? handed : cancel.race(handed)
    run.then(() => this.#directSettled(timer), () => this.#directSettled(timer))
    this.#running++
    this.#chain = run.catch(() => {})
    return run
  }

  #directSettled (timer: NodeJS.Timeout | undefined): void {
    clearTimeout(timer)
    this.#direct = undefined
    this.#running--
  }

  /** Hands the head offer to the receive that waits for it (#await). */
  #handOver (): void {
    const direct = this.#direct
    if (direct === undefined || this.#offers.length === 0) return
    this.#direct = undefined
    if (this.#offers[0].inline !== undefined) {
      const offer = this.#taken()
      direct.resolve(takeInline(offer, offer.inline as ArrayBuffer[], undefined))
      // The receive settles once this poll callback returns: reading on first would only delay it.
      this.#t.yieldRead = true
      return
    }
    // Any other offer walks the ladder, from a microtask as a woken receive would.
    queueMicrotask(() => { this.#receiveOne(undefined, direct.cancel).then(direct.resolve, direct.reject) })
  }

  /** A multi-message inline gift is complete: it may join the queue (the overflow checks of handle()). */
  #queued (): void {
    if (this.#offers.length >= MAX_QUEUED_OFFERS) throw overflow()
  }

  /** Offers joined the queue: pause reading if it is full, and hand the head one to a waiting receive. */
  #arrived (): void {
    if (this.#offers.length >= PAUSE_OFFERS || this.#heldBytes >= PAUSE_BYTES) this.#t.pause()
    this.#handOver()
    for (const wake of this.#wake.splice(0)) wake()
  }

  /** Takes the head offer off the queue; reading resumes once the queue has room again. */
  #taken (): Offer {
    const offer = this.#offers.shift() as Offer
    if (offer.inline !== undefined && offer.total > INLINE_MAX) this.#heldBytes -= offer.total
    if (this.#offers.length < RESUME_OFFERS && this.#heldBytes < PAUSE_BYTES / 2) this.#t.resume()
    return offer
  }

  async #receiveOne (into: Uint8Array[] | undefined, cancel: Cancel): Promise<Gift> {
    while (this.#offers.length === 0) {
      if (this.#closed !== undefined) throw this.#closed
      await cancel.race(new Promise<void>((resolve) => this.#wake.push(resolve)))
    }
    const offer = this.#offers[0]
    if (into !== undefined) {
      const room = into.reduce((a, v) => a + v.byteLength, 0)
      if (room < offer.total) {
        throw new PagegiftError('ERR_PAGEGIFT_INTO_TOO_SMALL', `The gift is ${offer.total} bytes but "into" holds ${room}; the gift is still queued and can be received without "into"`)
      }
    }
    const moveBlocked = offer.move !== undefined && into !== undefined ? planMove(offer, into) : undefined
    if (offer.forced === 'move' && typeof moveBlocked === 'string') {
      throw new PagegiftError('ERR_PAGEGIFT_PATH_UNAVAILABLE', `The gift was forced to 'move' but ${moveBlocked}; it is still queued and can be received without "into"`)
    }
    this.#taken()
    if (offer.inline !== undefined) return takeInline(offer, offer.inline, into)
    this.#inbox = { id: offer.id, items: [] }
    this.#active = cancel
    // The targets stay the receive's until it settles: release() refuses them meanwhile.
    const pinned = [...new Set((into ?? []).map((v) => regionOf(v.buffer)).filter((r): r is Region => r !== undefined))]
    for (const r of pinned) r.busy++
    try {
      let gift: Gift
      try {
        gift = await this.#ladder(offer, into, moveBlocked, cancel)
      } catch (err) {
        this.#t.send(Type.Fail, { id: offer.id, to: 'writer', code: (err as PagegiftError).code ?? 'ERR_PAGEGIFT_READER', message: (err as Error).message }).catch(() => {})
        throw err
      }
      await this.#confirm(offer, gift, into === undefined)
      return gift
    } finally {
      for (const r of pinned) r.busy--
      this.#active = undefined
      this.#inbox = undefined
      for (const m of offer.memfds) m.unref()
    }
  }

  /**
   * Sends Done. Copied bytes are ours only once the writer can learn so: if Done cannot be sent,
   * the writer takes its data back, so we drop our copy and fail. Moved pages are ours either way,
   * since a writer never takes back pages it offered by move.
   */
  async #confirm (offer: Offer, gift: Gift, owned: boolean): Promise<void> {
    try {
      await this.#t.send(Type.Done, { id: offer.id, path: gift.path, reason: gift.reason })
    } catch (err) {
      if (gift.path === 'move') return
      if (owned) for (const ab of gift.buffers) release(ab)
      throw err
    }
  }

  async #ladder (offer: Offer, into: Uint8Array[] | undefined, plan: Move[] | string | undefined, cancel: Cancel): Promise<Gift> {
    const reasons: string[] = []
    const note = (why: string | undefined): void => { if (why !== undefined && !reasons.includes(why)) reasons.push(why) }
    const done = (path: GiftPath, buffers: ArrayBuffer[]): Gift => ({
      buffers, meta: offer.meta, path, bytes: offer.total, ...(reasons.length > 0 ? { reason: reasons.join('; ') } : {}),
    })
    const ladder = offer.forced !== undefined ? [offer.forced] : PATHS
    let targets = into
    let owned: ArrayBuffer[] | undefined
    const target = (): Uint8Array[] => {
      if (targets === undefined) {
        owned = offer.lengths.map((n) => allocReceive(n))
        targets = owned.map((ab) => new Uint8Array(ab))
      }
      return targets
    }
    const result = (): ArrayBuffer[] => owned ?? [...new Set((into ?? []).map((v) => v.buffer as ArrayBuffer))]
    try {
      for (const path of ladder) {
        if (path === 'move') {
          if (offer.move === undefined) { note(offer.why ?? 'the writer did not offer pages'); continue }
          const blocked = typeof plan === 'string' ? plan : unsealed(offer)
          if (blocked !== undefined) { note(blocked); continue }
          if (into === undefined) return done('move', offer.move.map((extents, i) => mapExtents(extents, offer.lengths[i])))
          const failed = moveAll(plan as Move[], offer.forced === 'move')
          if (failed !== undefined) { note(failed); continue }
          return done('move', result())
        }
        const got = await this.#copyPath(path, offer, target, offer.forced !== undefined, cancel)
        if (typeof got === 'string') { note(got); continue }
        return done(path, result())
      }
    } catch (err) {
      for (const ab of owned ?? []) release(ab)
      throw err
    }
    for (const ab of owned ?? []) release(ab)
    throw new PagegiftError('ERR_PAGEGIFT_PATH_UNAVAILABLE', `No path could deliver the gift: ${reasons.join('; ')}`)
  }

  /** Runs one copying path; returns a reason string when the path is not available here. */
  async #copyPath (path: GiftPath, offer: Offer, target: () => Uint8Array[], forced: boolean, cancel: Cancel): Promise<string | undefined> {
    if (path === 'cma') return await this.#cma(offer, target, forced, cancel)
    if (path === 'splice') {
      const reply = await this.#ask(offer.id, 'splice', cancel)
      if (reply.m.type === Type.Skip) return str(obj(reply.m.json, 'skip').reason, 'reason')
      if (reply.m.type !== Type.Splice) throw protocolError('expected a splice reply')
      const fd = reply.fds[0]
      try {
        const r = native.pipeReader(fd)
        if (r < 0) throw protocolError(`the splice reply's fd is not a pipe (${new SystemError(r, 'fstat').code})`)
        await pump('read', fd, spansOf(target(), offer.total), offer.total, cancel)
      } catch (err) {
        if ((err as SystemError).code === 'EPIPE') throw new SystemError((err as SystemError).errno, 'read', undefined, 'the writer stopped splicing mid-gift')
        throw err
      } finally {
        native.close(fd)
      }
      return undefined
    }
    return await this.#copy(offer, target(), cancel)
  }

  async #cma (offer: Offer, target: () => Uint8Array[], forced: boolean, cancel: Cancel): Promise<string | undefined> {
    let cma = offer.cma
    if (cma === undefined) {
      const reply = await this.#ask(offer.id, 'cma', cancel)
      if (reply.m.type === Type.Skip) return str(obj(reply.m.json, 'skip').reason, 'reason')
      if (reply.m.type !== Type.Cma) throw protocolError('expected a cma reply')
      cma = parseCma(reply.m.json)
    }
    // Read only the process at the other end of the socket. A socketpair made in this process
    // names us as its peer whoever holds the other end, so then only our own pid passes.
    const peer = this.#peerPid()
    if (peer > 0 && peer !== process.pid && cma.pid !== peer) throw protocolError(`cma pid ${cma.pid} is not the peer's pid ${peer}`)
    if (cma.pid !== peer) {
      const why = 'cma: the writer\'s pid cannot be checked (the socket\'s peer is this process)'
      if (forced) throw new PagegiftError('ERR_PAGEGIFT_PATH_UNAVAILABLE', `Cannot gift by the forced path 'cma': ${why}`)
      return why
    }
    const r = await pull(cma.pid, spansOf(target(), offer.total), new Float64Array(cma.iov), offer.total)
    if (r === offer.total) return undefined
    const err = r < 0 ? new SystemError(r, 'process_vm_readv') : protocolError('short process_vm_readv')
    if (!forced && FALLBACK_ERRNOS.has(err.code)) return `cma: process_vm_readv ${err.code}`
    throw err
  }

  /** The copy path: the writer's Data chunks land in the views as they arrive. */
  async #copy (offer: Offer, views: Uint8Array[], cancel: Cancel): Promise<string | undefined> {
    const inbox = this.#inbox as Inbox
    const put = scatter(views)
    let received = 0
    let finished: () => void = () => {}
    const complete = new Promise<void>((resolve) => { finished = resolve })
    inbox.sink = (chunk) => {
      if (received + chunk.byteLength > offer.total) throw protocolError('more data than the gift holds')
      received += chunk.byteLength
      put(chunk)
      if (received === offer.total) finished()
    }
    try {
      await this.#t.send(Type.Need, { id: offer.id, path: 'copy' })
      // Either every byte arrives, or the writer answers with Skip or Fail, or the channel closes.
      const stop = this.#next(offer.id, cancel)
      stop.catch(() => {})
      const outcome = await cancel.race(Promise.race([complete.then(() => undefined), stop]))
      if (outcome === undefined) return undefined
      if (outcome.m.type === Type.Skip) return str(obj(outcome.m.json, 'skip').reason, 'reason')
      closeFds(outcome.fds)
      throw protocolError('unexpected message during a copy')
    } finally {
      inbox.sink = undefined
    }
  }

  async #ask (id: number, path: GiftPath, cancel: Cancel): Promise<{ m: Decoded, fds: number[] }> {
    await this.#t.send(Type.Need, { id, path })
    return await this.#next(id, cancel)
  }

  async #next (id: number, cancel: Cancel): Promise<{ m: Decoded, fds: number[] }> {
    const inbox = this.#inbox as Inbox
    while (inbox.items.length === 0) {
      if (this.#closed !== undefined) throw this.#closed
      await cancel.race(new Promise<void>((resolve) => { inbox.wake = resolve }))
    }
    const item = inbox.items.shift() as { m: Decoded, fds: number[] }
    if (item.m.type === Type.Fail) {
      closeFds(item.fds)
      const json = obj(item.m.json, 'fail')
      throw new PagegiftError(str(json.code, 'code', 100), `The writer failed gift ${id}: ${str(json.message, 'message')}`)
    }
    return item
  }

  /**
   * The channel closed. Gifts whose pages or bytes are already here (move and inline offers) stay
   * receivable: their writer gave them away. Everything else fails with `err`.
   */
  abort (err: Error): void {
    this.#closed = err
    // A multi-message inline gift cut short never reaches a receive: its writer gets its data back.
    if (this.#filling !== undefined) dropChunked(this.#filling.offer.inline as ArrayBuffer[])
    this.#filling = undefined
    this.#active?.cancel(err)
    this.#direct?.reject(err)
    const given = (o: Offer): boolean => o.move !== undefined || o.inline !== undefined
    for (const o of this.#offers.filter((o) => !given(o))) for (const m of o.memfds) m.unref()
    this.#offers = this.#offers.filter(given)
    for (const wake of this.#wake.splice(0)) wake()
    this.#inbox?.wake?.()
    for (const item of this.#inbox?.items ?? []) closeFds(item.fds)
  }
}

/**
 * Moves pages into the reader's targets, all or nothing (see moveInto). Returns why it could not,
 * for a fallback to a copying path, or throws when a target had to be detached.
 */
function moveAll (plan: Move[], forced: boolean): string | undefined {
  try {
    moveInto(plan)
    return undefined
  } catch (err) {
    if (forced || plan.some((m) => m.region.released)) throw err
    return `move: mmap ${(err as SystemError).code}`
  }
}

function intoArg (opts: ReceiveOptions): Uint8Array[] | undefined {
  if (opts === null || typeof opts !== 'object') throw new TypeError('The "opts" argument must be an object')
  if (opts.into === undefined) return undefined
  const list = Array.isArray(opts.into) ? opts.into : [opts.into]
  if (list.length === 0 || list.length > MAX_BUFFERS) throw new RangeError(`The "opts.into" argument must hold 1 to ${MAX_BUFFERS} views`)
  return list.map((v, i) => {
    if (!ArrayBuffer.isView(v) || !(v.buffer instanceof ArrayBuffer)) throw new TypeError(`The "opts.into${Array.isArray(opts.into) ? `[${i}]` : ''}" argument must be an ArrayBufferView over an ArrayBuffer`)
    if (v.byteLength === 0) throw new RangeError(`The "opts.into${Array.isArray(opts.into) ? `[${i}]` : ''}" argument is empty or detached`)
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength)
  })
}
