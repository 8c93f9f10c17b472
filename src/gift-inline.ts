/**
 * Inline gifts: a gift small enough travels whole in one message, its bytes after the offer, with no
 * reply. The writer's send, the reader's check of such a message, and its delivery to receive().
 */
import { PagegiftError } from './errors.ts'
import { native } from './native.ts'
import type { Offer } from './offer.ts'
import { scatter } from './pump.ts'
import { MAX_BUFFERS, type Gift, type GiftReceipt, type Sources } from './sources.ts'
import type { Transport } from './transport.ts'
import { INLINE_MAX, Type, obj, protocolError, uint, uints } from './wire.ts'

/**
 * A small gift travels whole in one message, with no reply: its bytes are the reader's once the
 * kernel has them, as moved pages are once offered. Until then (a full socket) it can still time
 * out or fail with the channel, and then its data comes back on the error.
 */
export function sendInline (t: Transport, id: number, sources: Sources, metaJson: string | undefined, timeoutMs: number | undefined): Promise<GiftReceipt> {
  const json = { id, lengths: sources.lengths, meta: metaJson === undefined ? null : JSON.parse(metaJson) }
  const { sent, withdraw } = t.sendWithdrawable(Type.Inline, json, sources.inline)
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      const out = new PagegiftError((err as PagegiftError).code ?? 'ERR_PAGEGIFT_GIFT_FAILED', `The gift was not delivered: ${err.message}`, { cause: err })
      out.buffers = sources.recover()
      reject(out)
    }
    const timer = timeoutMs === undefined
      ? undefined
      : setTimeout(() => { if (withdraw()) fail(new PagegiftError('ERR_PAGEGIFT_TIMEOUT', `The reader did not take the gift within ${timeoutMs} ms`)) }, timeoutMs)
    sent.then(() => {
      clearTimeout(timer)
      sources.release()
      resolve({ path: 'copy', bytes: sources.total, reason: 'inline' })
    }, (err: Error) => {
      clearTimeout(timer)
      fail(err)
    })
  })
}

/**
 * Validates an inline offer and copies its bytes out of the receive buffer (which the next read
 * reuses). It may carry no fds (they are closed) and offers no other path.
 */
export function parseInline (x: unknown, data: Uint8Array, fds: number[]): Offer {
  if (fds.length > 0) {
    for (const fd of fds) native.close(fd)
    throw protocolError(`an inline offer with ${fds.length} fds`)
  }
  const o = obj(x, 'inline offer')
  const lengths = uints(o.lengths, 'lengths', MAX_BUFFERS, INLINE_MAX)
  const total = lengths.reduce((a, b) => a + b, 0)
  if (lengths.length === 0 || lengths.includes(0) || total > INLINE_MAX) throw protocolError('inline lengths out of range')
  if (total !== data.byteLength) throw protocolError(`inline lengths say ${total} bytes, ${data.byteLength} arrived`)
  if (o.move !== undefined || o.cma !== undefined || o.forced !== undefined) throw protocolError('an inline offer may not offer another path')
  let at = 0
  const inline = lengths.map((n) => {
    const ab = new ArrayBuffer(n)
    new Uint8Array(ab).set(data.subarray(at, at += n))
    return ab
  })
  return { id: uint(o.id, 'id'), lengths, total, meta: o.meta, memfds: [], inline }
}

/** An inline gift: its bytes are here already; with `into` they are copied there, in order. */
export function takeInline (offer: Offer, buffers: ArrayBuffer[], into: Uint8Array[] | undefined): Gift {
  const gift = (out: ArrayBuffer[]): Gift => ({ buffers: out, meta: offer.meta, path: 'copy', bytes: offer.total, reason: 'inline' })
  if (into === undefined) return gift(buffers)
  const put = scatter(into)
  for (const ab of buffers) put(new Uint8Array(ab))
  return gift([...new Set(into.map((view) => view.buffer as ArrayBuffer))])
}
