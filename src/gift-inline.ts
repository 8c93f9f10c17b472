/**
 * Inline gifts: a gift small enough travels whole in one message, its bytes after the offer, with no
 * reply; the small gifts given in one turn share messages (Batch). The writer's send, the reader's
 * check of such a message, and its delivery to receive().
 */
import { PagegiftError } from './errors.ts'
import { native } from './native.ts'
import type { Offer } from './offer.ts'
import { scatter } from './pump.ts'
import { MAX_BUFFERS, Sources, type Gift, type GiftData, type GiftReceipt } from './sources.ts'
import { joined, type Transport } from './transport.ts'
import { INLINE_CHUNKED_MAX, INLINE_MAX, MAX_BATCH, MAX_DATA, MAX_JSON, Type, obj, protocolError, uint, uints, type Decoded } from './wire.ts'
import { allocReceive, isGiftable, release } from './pages.ts'

/** The JSON of one inline offer, around the meta the writer serialised once. */
function offerText (id: number, sources: Sources, metaJson: string | undefined): string {
  return `{"id":${id},"lengths":[${sources.lengths.join(',')}],"meta":${metaJson ?? 'null'}}`
}

function failed (sources: Sources, err: Error): PagegiftError {
  return failure(err, sources.recover())
}

function failure (err: Error, buffers: ArrayBuffer[]): PagegiftError {
  const out = new PagegiftError((err as PagegiftError).code ?? 'ERR_PAGEGIFT_GIFT_FAILED', `The gift was not delivered: ${err.message}`, { cause: err })
  out.buffers = buffers
  return out
}

const RECEIPT = 'inline'

/**
 * A small gift travels whole in one message, with no reply: its bytes are the reader's once the
 * kernel has them, as moved pages are once offered. Until then (a full socket) it can still time
 * out or fail with the channel, and then its data comes back on the error. A gift with a timeout
 * goes alone, so that it can be taken back whole.
 */
export function sendInline (t: Transport, id: number, sources: Sources, metaJson: string | undefined, timeoutMs: number): Promise<GiftReceipt> {
  const { sent, withdraw } = t.sendText(Type.Inline, offerText(id, sources, metaJson), undefined, sources.inline)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (withdraw()) reject(failed(sources, new PagegiftError('ERR_PAGEGIFT_TIMEOUT', `The reader did not take the gift within ${timeoutMs} ms`)))
    }, timeoutMs)
    sent.then(() => {
      clearTimeout(timer)
      sources.release()
      resolve({ path: 'copy', bytes: sources.total, reason: RECEIPT })
    }, (err: Error) => {
      clearTimeout(timer)
      reject(failed(sources, err))
    })
  })
}

/**
 * A gift past one message's data (memory whose pages cannot move, up to INLINE_CHUNKED_MAX): the
 * offer with the first MAX_DATA bytes, then Data messages with the rest, queued together so that
 * nothing comes between them, and no reply. It resolves once the kernel has the last one; if the
 * channel closes first, the gift fails with its data handed back, and the reader drops the part it
 * has (it never hands out a gift whose bytes did not all arrive).
 */
export function sendChunked (t: Transport, id: number, sources: Sources, metaJson: string | undefined): Promise<GiftReceipt> {
  const parts = chunksOf(sources.inline as Uint8Array[], MAX_DATA)
  const text = `${offerText(id, sources, metaJson).slice(0, -1)},"more":${parts.length - 1}}`
  const json = { id }
  return new Promise((resolve, reject) => {
    let left = parts.length
    let failure: Error | undefined
    const done = (err?: Error): void => {
      if (failure !== undefined) return
      if (err !== undefined) {
        failure = err
        reject(failed(sources, err))
        return
      }
      if (--left > 0) return
      sources.release()
      resolve({ path: 'copy', bytes: sources.total, reason: RECEIPT })
    }
    t.post(Type.Inline, text, undefined, parts[0], [], done)
    // An offer that failed at once (it could not be encoded, the channel is closed) takes its Data
    // messages with it: none is posted, so none can go out from buffers handed back to the user.
    for (let i = 1; i < parts.length && failure === undefined; i++) t.post(Type.Data, undefined, json, parts[i], [], done)
  })
}

/** `views` cut into runs of exactly `size` bytes (the last one shorter), without copying. */
function chunksOf (views: Uint8Array[], size: number): Uint8Array[][] {
  const out: Uint8Array[][] = []
  let run: Uint8Array[] = []
  let room = size
  for (const v of views) {
    for (let at = 0; at < v.byteLength;) {
      const n = Math.min(room, v.byteLength - at)
      run.push(v.subarray(at, at + n))
      at += n
      room -= n
      if (room === 0) {
        out.push(run)
        run = []
        room = size
      }
    }
  }
  if (run.length > 0) out.push(run)
  return out
}

interface Held { text: string, sources: Sources, resolve: (r: GiftReceipt) => void, reject: (err: Error) => void }

/** Settles the gifts of one message: sent, or failed with their bytes handed back. */
function settleGroup (group: Held[], err: Error | undefined): void {
  if (err !== undefined) {
    for (const h of group) h.reject(failed(h.sources, err))
    return
  }
  for (const h of group) {
    h.sources.release()
    h.resolve({ path: 'copy', bytes: h.sources.total, reason: RECEIPT })
  }
}

/** Room in a Batch message's JSON for `{"gifts":[...]}` around the offers. */
const BATCH_JSON_OVERHEAD = 16

/**
 * Holds the inline gifts given in one turn of the event loop and sends them in as few messages as
 * fit (a Batch message each, or an Inline message for a gift alone): one sendmsg for the reader to
 * wake to and one recvmsg to read, however many gifts. A turn ends at the next microtask checkpoint,
 * so a gift waits for no timer; anything else the channel sends first flushes what is held
 * (Transport.beforeSend), so messages keep the order they were given in.
 */
export class InlineBatcher {
  readonly #t: Transport
  #held: Held[] = []
  /**
   * Where small gifts' bytes wait, one after another, to be sent as a Batch message's data as they
   * lie. It is written again from the start once everything in it went out at once (the kernel has
   * copied it); a message that had to queue keeps it, and the next gifts get a new one.
   */
  #chunk = new Uint8Array(MAX_DATA)
  #used = 0

  constructor (t: Transport) {
    this.#t = t
    t.beforeSend = () => this.flush()
  }

  /** Takes a small plain buffer (Sources.takeSmall) with its bytes copied into the chunk. */
  takeSmall (data: GiftData, pagesRoom: number): Sources | undefined {
    return Sources.takeSmall(data, MAX_DATA, pagesRoom, (bytes) => {
      if (this.#used + bytes.byteLength > MAX_DATA) this.flush()
      const at = this.#used
      this.#chunk.set(bytes, at)
      this.#used += bytes.byteLength
      return this.#chunk.subarray(at, this.#used)
    })
  }

  /** Holds a gift until the turn ends; resolves once the kernel has it. */
  add (id: number, sources: Sources, metaJson: string | undefined): Promise<GiftReceipt> {
    return new Promise((resolve, reject) => {
      if (this.#held.push({ text: offerText(id, sources, metaJson), sources, resolve, reject }) === 1) queueMicrotask(() => this.flush())
    })
  }

  /** Sends every held gift now, packed into messages of at most MAX_BATCH gifts and MAX_DATA bytes. */
  flush (): void {
    const held = this.#held
    if (held.length === 0) return
    this.#held = []
    let allSent = true
    for (let i = 0; i < held.length;) {
      let n = 0
      let bytes = 0
      let text = BATCH_JSON_OVERHEAD
      while (i + n < held.length && n < MAX_BATCH) {
        const h = held[i + n]
        const more = Buffer.byteLength(h.text) + 1
        if (n > 0 && (bytes + h.sources.total > MAX_DATA || text + more > MAX_JSON)) break
        bytes += h.sources.total
        text += more
        n++
      }
      if (!this.#send(held.slice(i, i + n), bytes)) allSent = false
      i += n
    }
    if (!allSent) this.#chunk = new Uint8Array(MAX_DATA)
    this.#used = 0
  }

  /** The channel closed with gifts still held: each fails, its data back on the error. */
  abort (err: Error): void {
    for (const h of this.#held.splice(0)) h.reject(failed(h.sources, err))
    this.#chunk = new Uint8Array(MAX_DATA)
    this.#used = 0
  }

  /**
   * Sends one message of gifts; says whether it settled at once (the kernel took it, or it failed
   * and each gift's bytes came out of the chunk), so that the chunk can be written again.
   */
  #send (group: Held[], bytes: number): boolean {
    let settled = false
    const single = group.length === 1
    const text = single ? group[0].text : `{"gifts":[${group.map((h) => h.text).join(',')}]}`
    const data = single ? group[0].sources.inline : this.#data(group, bytes)
    this.#t.post(single ? Type.Inline : Type.Batch, text, undefined, data, [], (err?: Error) => {
      settled = true
      settleGroup(group, err)
    })
    return settled
  }

  /** A group's bytes as one view: where they lie one after another in the chunk, else copied together. */
  #data (group: Held[], bytes: number): Uint8Array {
    const views: Uint8Array[] = []
    for (const h of group) for (const v of h.sources.inline ?? []) views.push(v)
    let end = views[0].byteOffset
    let inChunk = true
    for (const v of views) {
      inChunk &&= v.buffer === this.#chunk.buffer && v.byteOffset === end
      end += v.byteLength
    }
    if (inChunk) return new Uint8Array(this.#chunk.buffer, views[0].byteOffset, bytes)
    return joined(views)
  }
}

/**
 * Validates an inline offer and copies its bytes out of the receive buffer (which the next read
 * reuses). It may carry no fds (they are closed) and offers no other path.
 */
export function parseInline (x: unknown, data: Uint8Array, fds: number[]): Offer {
  noFds(fds, 'an inline offer')
  const offer = inlineOffer(x, 'inline offer', data, 0)
  if (offer.total !== data.byteLength) throw protocolError(`inline lengths say ${offer.total} bytes, ${data.byteLength} arrived`)
  return offer
}

/**
 * Validates a batch of inline offers, `{ gifts: [offer, ...] }` with their bytes one after another,
 * and copies each gift's bytes out. Every gift is checked as an Inline message's offer is, and
 * together their lengths must account for every byte that arrived, no more and no fewer.
 */
export function parseBatch (x: unknown, data: Uint8Array, fds: number[]): Offer[] {
  noFds(fds, 'a batch of inline offers')
  const list = obj(x, 'batch').gifts
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_BATCH) throw protocolError(`batch.gifts is not an array of 1 to ${MAX_BATCH} offers`)
  let at = 0
  const offers = list.map((o: unknown, i: number) => {
    if (at > data.byteLength) throw protocolError(`batch lengths say more than the ${data.byteLength} bytes that arrived`)
    const offer = inlineOffer(o, `batch.gifts[${i}]`, data, at)
    at += offer.total
    return offer
  })
  if (at !== data.byteLength) throw protocolError(`batch lengths say ${at} bytes, ${data.byteLength} arrived`)
  return offers
}

function noFds (fds: number[], what: string): void {
  if (fds.length === 0) return
  for (const fd of fds) native.close(fd)
  throw protocolError(`${what} with ${fds.length} fds`)
}

/** True for 1 to MAX_BUFFERS integers in [1, max]: a subset of what uints() accepts here. */
function plainLengths (x: unknown, max: number): x is number[] {
  if (!Array.isArray(x) || x.length === 0 || x.length > MAX_BUFFERS) return false
  for (const n of x) if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > max) return false
  return true
}

/** What every inline offer (one message or several) must be: lengths of at most `max` bytes in all, no other path, an id. */
function inlineHead (o: Record<string, unknown>, max: number): { id: number, lengths: number[], total: number } {
  // The common case checked without the validator's per-item labels; anything else gets its precise error there.
  const lengths = plainLengths(o.lengths, max) ? o.lengths : uints(o.lengths, 'lengths', MAX_BUFFERS, max)
  let total = 0
  for (const n of lengths) total += n
  if (lengths.length === 0 || lengths.includes(0) || total > max) throw protocolError('inline lengths out of range')
  if (o.move !== undefined || o.cma !== undefined || o.forced !== undefined) throw protocolError('an inline offer may not offer another path')
  return { id: uint(o.id, 'id'), lengths, total }
}

/** One inline offer whose bytes start at `at` in `data`; short data is caught before any copy. */
function inlineOffer (x: unknown, what: string, data: Uint8Array, at: number): Offer {
  const o = obj(x, what)
  const { id, lengths, total } = inlineHead(o, INLINE_MAX)
  if (at + total > data.byteLength) return { id, lengths, total, meta: o.meta, memfds: [] }
  // Copied: the receive buffer is read again for the next message. A typed array's slice() makes
  // its own ArrayBuffer of exactly these bytes, 1.5-2x faster here than new ArrayBuffer() and set().
  const inline = lengths.map((n) => data.slice(at, at += n).buffer)
  return { id, lengths, total, meta: o.meta, memfds: [], inline }
}

/** A multi-message inline gift (sendChunked) whose offer has arrived and whose bytes are arriving. */
export interface Filling { offer: Offer, put: (chunk: Uint8Array) => void, got: number }

/** True when an Inline message's offer says more messages follow it. */
export function isChunked (x: unknown): boolean {
  return typeof x === 'object' && x !== null && (x as { more?: unknown }).more !== undefined
}

/**
 * Validates the offer of a multi-message inline gift: more than one message's bytes, at most
 * INLINE_CHUNKED_MAX, in exactly as many messages as MAX_DATA-byte chunks take, the first one full.
 * Its buffers are made now (receive pool memory for a single buffer, unless no memfd can be had;
 * plain ArrayBuffers otherwise), and its first chunk copied in; the rest go in as they come (fillChunk).
 */
export function startChunked (x: unknown, data: Uint8Array, fds: number[]): Filling {
  noFds(fds, 'an inline offer')
  const o = obj(x, 'inline offer')
  const { id, lengths, total } = inlineHead(o, INLINE_CHUNKED_MAX)
  if (total <= INLINE_MAX) throw protocolError('inline lengths out of range')
  const more = uint(o.more, 'more')
  if (more !== Math.ceil(total / MAX_DATA) - 1) throw protocolError(`an inline offer of ${total} bytes in ${more + 1} messages`)
  if (data.byteLength !== MAX_DATA) throw protocolError(`the first of several inline messages carries ${data.byteLength} bytes, not ${MAX_DATA}`)
  // One buffer takes receive-pool memory (one memfd); several take plain ArrayBuffers, so that an
  // offer of 1024 small buffers, queued up to PAUSE_BYTES deep, cannot cost 1024 fds apiece.
  const buffers = lengths.length === 1 ? [receiveBuffer(lengths[0])] : lengths.map((n) => new ArrayBuffer(n))
  const put = scatter(buffers.map((ab) => new Uint8Array(ab)))
  put(data)
  return { offer: { id, lengths, total, meta: o.meta, memfds: [], inline: buffers }, put, got: data.byteLength }
}

function receiveBuffer (n: number): ArrayBuffer {
  try {
    return allocReceive(n)
  } catch {
    return new ArrayBuffer(n) // no memfd to be had (out of fds): the bytes must still land somewhere
  }
}

/**
 * Takes the next message of a multi-message inline gift: a Data message for it, no fds, exactly the
 * next chunk's bytes. Anything else is a protocol error. Returns true once every byte is in.
 */
export function fillChunk (f: Filling, m: Decoded, fds: number[]): boolean {
  noFds(fds, `a chunk of inline gift ${f.offer.id}`)
  if (m.type !== Type.Data) throw protocolError(`a message of type ${m.type} came between the messages of inline gift ${f.offer.id}`)
  const id = uint(obj(m.json, 'data').id, 'id')
  if (id !== f.offer.id) throw protocolError(`data for gift ${id} came between the messages of inline gift ${f.offer.id}`)
  const due = Math.min(MAX_DATA, f.offer.total - f.got)
  if (m.data.byteLength !== due) throw protocolError(`a chunk of ${m.data.byteLength} bytes where ${due} were due`)
  f.put(m.data)
  f.got += due
  return f.got === f.offer.total
}

/** Gives back the buffers of a multi-message inline gift that will not be received. */
export function dropChunked (buffers: ArrayBuffer[]): void {
  for (const ab of buffers) if (isGiftable(ab)) release(ab)
}

/**
 * An inline gift: its bytes are here already; with `into` they are copied there, in order (and
 * buffers from the receive pool go back to it).
 */
export function takeInline (offer: Offer, buffers: ArrayBuffer[], into: Uint8Array[] | undefined): Gift {
  if (into === undefined) return { buffers, meta: offer.meta, path: 'copy', bytes: offer.total, reason: RECEIPT }
  const put = scatter(into)
  for (const ab of buffers) put(new Uint8Array(ab))
  if (offer.total > INLINE_MAX) dropChunked(buffers)
  return { buffers: [...new Set(into.map((view) => view.buffer as ArrayBuffer))], meta: offer.meta, path: 'copy', bytes: offer.total, reason: RECEIPT }
}
