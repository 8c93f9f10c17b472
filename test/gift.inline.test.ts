/**
 * Small gifts travel inline: the bytes in the one message that offers them, with no reply. Their
 * semantics (plain ArrayBuffers, receipt 'copy'/'inline', detached sources, `into`, forced paths),
 * and hostile inline offers: each closes the channel with a clear error and leaks no fd.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Channel, alloc, channelPair, isGiftable, pageSize, release } from '../src/index.ts'
import { native } from '../src/native.ts'
import { INLINE_CHUNKED_MAX, INLINE_MAX, INLINE_MAX_PAGES, MAX_DATA, Type } from '../src/wire.ts'
import { ask, digest, fillPattern, spawnPeer, withTimeout } from './helpers.ts'
import { expectRefused, packet, rawPair, readRaw } from './fixtures/raw-wire.ts'

describe('small gifts go inline', () => {
  test('one message, no reply: gift() resolves with nothing sent back; the receipt says copy/inline', async () => {
    const { ch, raw, done } = rawPair()
    try {
      const src = fillPattern(new Uint8Array(alloc(1000)), 1)
      const want = digest([src])
      const receipt = await withTimeout(ch.gift(src, { meta: { hi: 1 } }), 10_000, 'the inline gift')
      assert.deepEqual(receipt, { path: 'copy', bytes: 1000, reason: 'inline' })
      assert.equal(src.byteLength, 0, 'the writer\'s buffer is detached')
      const m = await readRaw(raw)
      assert.equal(m?.type, Type.Inline)
      assert.equal(m?.fds, 0)
      assert.deepEqual(m?.json, { id: 1, lengths: [1000], meta: { hi: 1 } })
      assert.equal(digest([m?.data as Uint8Array]), want)
      assert.equal(native.recvmsg(raw, new Uint8Array(64), new Int32Array(66)), -native.constants.EAGAIN, 'exactly one message')
    } finally {
      done()
    }
  })
  test('across processes: plain ArrayBuffers arrive, several buffers, both sides agree', async () => {
    const peer = spawnPeer('gift-peer.ts')
    try {
      const reply = ask(peer.ch, { op: 'gift', kind: 'alloc', sizes: [100, 5000, 1], seed: 2 })
      const g = await withTimeout(peer.ch.receive(), 30_000, 'the inline gift')
      const r = await reply
      assert.equal(g.path, 'copy')
      assert.equal(g.reason, 'inline')
      assert.equal(r.reason, 'inline')
      assert.deepEqual(g.buffers.map((b) => b.byteLength), [100, 5000, 1])
      assert.ok(g.buffers.every((b) => b instanceof ArrayBuffer && !isGiftable(b)), 'plain ArrayBuffers')
      assert.equal(digest(g.buffers), r.digest)
    } finally {
      await peer.ch.send({ op: 'exit' }); await withTimeout(peer.exited, 30_000, 'the peer to exit'); peer.ch.close()
    }
  })
  test('the limit: INLINE_CHUNKED_MAX bytes of plain memory go inline, one more byte does not', async () => {
    const [a, b] = channelPair()
    try {
      for (const [size, inline] of [[INLINE_MAX, true], [INLINE_MAX + 1, true], [INLINE_CHUNKED_MAX, true], [INLINE_CHUNKED_MAX + 1, false]] as const) {
        const got = b.receive()
        const receipt = await a.gift(new Uint8Array(size))
        const g = await got
        assert.equal(receipt.reason === 'inline', inline)
        assert.equal(g.reason === 'inline', inline)
        for (const buf of g.buffers) if (isGiftable(buf)) release(buf)
      }
    } finally {
      a.close(); b.close()
    }
  })
  test('memory whose pages could move goes inline only up to INLINE_MAX_PAGES, then moves', async () => {
    const [a, b] = channelPair()
    try {
      for (const [size, path] of [[INLINE_MAX_PAGES, 'inline'], [INLINE_MAX_PAGES + pageSize, 'move']] as const) {
        const got = b.receive()
        const receipt = await a.gift(alloc(size))
        const g = await got
        assert.equal(receipt.reason === 'inline' ? 'inline' : receipt.path, path)
        assert.equal(g.reason === 'inline' ? 'inline' : g.path, path)
        for (const buf of g.buffers) if (isGiftable(buf)) release(buf)
      }
    } finally {
      a.close(); b.close()
    }
  })
  test('a plain Buffer is detached; a pooled Buffer is copied, never detached', async () => {
    const [a, b] = channelPair()
    try {
      const plain = Buffer.allocUnsafeSlow(3000).fill(7)
      const pooled = Buffer.from('pooled bytes')
      const neighbour = Buffer.from('a neighbour in the pool')
      await a.gift(plain)
      await a.gift(pooled)
      assert.equal(plain.byteLength, 0)
      assert.equal(neighbour.toString(), 'a neighbour in the pool')
      assert.equal(Buffer.from((await b.receive()).buffers[0]).toString('hex'), Buffer.alloc(3000, 7).toString('hex'))
      assert.equal(Buffer.from((await b.receive()).buffers[0]).toString(), 'pooled bytes')
    } finally {
      a.close(); b.close()
    }
  })
  test('into: the bytes are copied into it, across several views, and its buffers come back', async () => {
    const [a, b] = channelPair()
    try {
      const src = fillPattern(new Uint8Array(3000), 3)
      const want = digest([src])
      const target = new Uint8Array(alloc(2 * pageSize))
      const heap = new Uint8Array(2000)
      const got = b.receive({ into: [target.subarray(10, 1010), heap] })
      await a.gift(src)
      const g = await got
      assert.equal(g.reason, 'inline')
      assert.deepEqual(g.buffers, [target.buffer, heap.buffer])
      assert.equal(digest([target.subarray(10, 1010), heap]), want)
      release(target.buffer as ArrayBuffer)
    } finally {
      a.close(); b.close()
    }
  })
  test('into too small: a clear error, and the inline gift can still be received', async () => {
    const [a, b] = channelPair()
    try {
      await a.gift(new Uint8Array(500).fill(4))
      await assert.rejects(b.receive({ into: new Uint8Array(499) }), { code: 'ERR_PAGEGIFT_INTO_TOO_SMALL' })
      assert.equal((await b.receive()).buffers[0].byteLength, 500)
    } finally {
      a.close(); b.close()
    }
  })
  test('a forced path is never inlined', async () => {
    const [a, b] = channelPair()
    try {
      for (const path of ['move', 'splice', 'copy'] as const) {
        const got = b.receive()
        const receipt = await a.gift(new Uint8Array(alloc(pageSize)), { path })
        const g = await got
        assert.equal(receipt.path, path)
        assert.equal(g.path, path)
        assert.notEqual(receipt.reason, 'inline')
        for (const buf of g.buffers) if (isGiftable(buf)) release(buf)
      }
    } finally {
      a.close(); b.close()
    }
  })
  test('inline gifts sent before the writer closed stay receivable', async () => {
    const [a, b] = channelPair()
    await a.gift(new Uint8Array(100).fill(5))
    a.close()
    await withTimeout(new Promise((resolve) => b.once('close', resolve)), 10_000, 'the close')
    const g = await b.receive()
    assert.equal(new Uint8Array(g.buffers[0])[99], 5)
    await assert.rejects(b.receive(), { code: 'ERR_PAGEGIFT_PEER_CLOSED' })
  })
  test('a receive handed a gift settles at once, and what else waits in the socket is read after it', async () => {
    // The reader returns to the event loop once it has settled a waiting receive (Transport.yieldRead):
    // the messages behind that one must still arrive, in order, from the next poll callbacks.
    const { ch, raw, done } = rawPair()
    try {
      const first = ch.receive()
      for (const id of [1, 2, 3]) assert.ok(native.sendmsg(raw, [packet(Type.Inline, `{"id":${id},"lengths":[2],"meta":${id}}`, new Uint8Array([id, id]))], []) >= 0)
      assert.ok(native.sendmsg(raw, [packet(Type.Message, '{"msg":"after"}')], []) >= 0)
      const metas = [(await withTimeout(first, 10_000, 'the first gift')).meta]
      for (let i = 0; i < 2; i++) metas.push((await withTimeout(ch.receive(), 10_000, 'a later gift')).meta)
      assert.deepEqual(metas, [1, 2, 3])
      assert.equal((await ch.recv({ timeoutMs: 10_000 })).msg, 'after')
    } finally {
      done()
    }
  })
  test('a recv() handed a control message settles before the channel reads on, and the messages behind it still come', async () => {
    // Transport.yieldRead again, for Channel.recv(): the waiter's reactions run before the channel
    // reads the next message (and, when there is none, before the read that finds the socket empty).
    const { ch, raw, done } = rawPair()
    try {
      const first = ch.recv({ timeoutMs: 10_000 })
      for (const m of ['one', 'two', 'three']) assert.ok(native.sendmsg(raw, [packet(Type.Message, `{"msg":"${m}"}`)], []) >= 0)
      assert.ok(native.sendmsg(raw, [packet(Type.Inline, '{"id":1,"lengths":[1],"meta":"gift"}', new Uint8Array([9]))], []) >= 0)
      assert.equal((await first).msg, 'one')
      // Not read yet: the next message comes from the next poll callback, after this turn's immediates.
      const second = ch.recv({ timeoutMs: 10_000 })
      const when = await Promise.race([second.then(() => 'already read'), new Promise((resolve) => setImmediate(() => resolve('next poll')))])
      assert.equal(when, 'next poll')
      assert.equal((await second).msg, 'two')
      assert.equal((await ch.recv({ timeoutMs: 10_000 })).msg, 'three')
      assert.equal((await withTimeout(ch.receive(), 10_000, 'the gift after them')).meta, 'gift')
    } finally {
      done()
    }
  })

  test('PAGEGIFT_DISABLE=copy set at run time stops inlining within 100 ms, and unset restores it', async () => {
    const [a, b] = channelPair()
    const before = process.env.PAGEGIFT_DISABLE
    const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 150))
    const giftOne = async (): Promise<string | undefined> => {
      const got = b.receive({ timeoutMs: 10_000 })
      const receipt = await a.gift(new Uint8Array(100).fill(7), { timeoutMs: 10_000 })
      assert.equal(new Uint8Array((await got).buffers[0])[99], 7)
      return receipt.reason
    }
    try {
      assert.equal(await giftOne(), 'inline')
      process.env.PAGEGIFT_DISABLE = 'copy'
      await pause()
      assert.notEqual(await giftOne(), 'inline')
      delete process.env.PAGEGIFT_DISABLE
      await pause()
      assert.equal(await giftOne(), 'inline')
    } finally {
      if (before === undefined) delete process.env.PAGEGIFT_DISABLE
      else process.env.PAGEGIFT_DISABLE = before
      a.close()
      b.close()
    }
  })

  test('a gift still queued behind a full socket times out, and its data comes back', async () => {
    const { ch, done } = rawPair()
    try {
      // Nobody reads the raw end: the socket fills after a few inline gifts, the rest queue here.
      const gifts = Array.from({ length: 64 }, (_, i) => {
        const src = fillPattern(new Uint8Array(INLINE_MAX), 100 + i)
        const want = digest([src])
        return ch.gift(src, { timeoutMs: 300 }).then(() => undefined, (err: Error & { code: string, buffers?: ArrayBuffer[] }) => ({ err, want }))
      })
      const failed = (await withTimeout(Promise.all(gifts), 10_000, 'the gifts')).filter((f) => f !== undefined)
      assert.ok(failed.length > 0, 'some gifts could not be sent')
      for (const f of failed) {
        assert.equal(f?.err.code, 'ERR_PAGEGIFT_TIMEOUT')
        assert.equal(digest(f?.err.buffers as ArrayBuffer[]), f?.want)
      }
    } finally {
      done()
    }
  })
})

describe('hostile inline offers close the channel with a clear error and leak no fd', () => {
  const big = (n: number): Uint8Array => new Uint8Array(n)
  const cases: Array<[string, () => Uint8Array, RegExp, number?]> = [
    ['lengths say more than arrived', () => packet(Type.Inline, '{"id":1,"lengths":[100]}', big(99)), /inline lengths say 100 bytes, 99 arrived/],
    ['lengths say less than arrived', () => packet(Type.Inline, '{"id":1,"lengths":[100]}', big(101)), /inline lengths say 100 bytes, 101 arrived/],
    ['no lengths', () => packet(Type.Inline, '{"id":1,"lengths":[]}', big(0)), /inline lengths out of range/],
    ['a zero length', () => packet(Type.Inline, '{"id":1,"lengths":[0,4]}', big(4)), /inline lengths out of range/],
    ['a length over the inline limit', () => packet(Type.Inline, `{"id":1,"lengths":[${INLINE_MAX + 1}]}`, big(0)), /lengths\[0\] is not an integer/],
    ['data over the message limit', () => packet(Type.Inline, `{"id":1,"lengths":[${MAX_DATA + 1}]}`, big(MAX_DATA + 1)), /length over the limit/],
    ['lengths that are not numbers', () => packet(Type.Inline, '{"id":1,"lengths":["4"]}', big(4)), /lengths\[0\] is not an integer/],
    ['no id', () => packet(Type.Inline, '{"lengths":[4]}', big(4)), /id is not an integer/],
    ['inline that also offers a move', () => packet(Type.Inline, `{"id":1,"lengths":[4],"move":[[[0,0,${pageSize}]]]}`, big(4)), /may not offer another path/],
    ['inline that also offers cma', () => packet(Type.Inline, `{"id":1,"lengths":[4],"cma":{"pid":1,"iov":[0,4]}}`, big(4)), /may not offer another path/],
    ['inline that claims a forced path', () => packet(Type.Inline, '{"id":1,"lengths":[4],"forced":"move"}', big(4)), /may not offer another path/],
    ['inline with fds attached', () => packet(Type.Inline, '{"id":1,"lengths":[4]}', big(4), 2), /an inline offer with 2 fds/, 2],
    ['inline with a memfd attached', () => packet(Type.Inline, '{"id":1,"lengths":[4]}', big(4), 1), /an inline offer with 1 fds/, -1],
  ]
  for (const [name, make, why, nfds = 0] of cases) {
    test(name, async () => {
      await expectRefused(make, () => nfds === -1 ? [native.memfdCreate('evil', pageSize, true)] : Array.from({ length: nfds }, () => native.dup(0)), why)
    })
  }
  test('an old-format offer (previous release) is still read after inline ones', async () => {
    const { ch, raw, done } = rawPair()
    try {
      native.sendmsg(raw, [packet(Type.Inline, '{"id":1,"lengths":[3]}', new Uint8Array([1, 2, 3]))], [])
      native.sendmsg(raw, [packet(Type.Offer, '{"id":2,"lengths":[3],"meta":"old"}')], [])
      assert.deepEqual([...new Uint8Array((await ch.receive()).buffers[0])], [1, 2, 3])
      const second = ch.receive()
      const need = await readRaw(raw)
      assert.deepEqual(need?.json, { id: 2, path: 'cma' }, 'the old offer walks the ladder as before')
      native.sendmsg(raw, [packet(Type.Skip, '{"id":2,"reason":"no cma"}')], [])
      assert.deepEqual((await readRaw(raw))?.json, { id: 2, path: 'splice' })
      native.sendmsg(raw, [packet(Type.Skip, '{"id":2,"reason":"no splice"}')], [])
      assert.deepEqual((await readRaw(raw))?.json, { id: 2, path: 'copy' })
      native.sendmsg(raw, [packet(Type.Data, '{"id":2}', new Uint8Array([7, 8, 9]))], [])
      const g = await withTimeout(second, 10_000, 'the old-format gift')
      assert.equal(g.meta, 'old')
      assert.deepEqual([...new Uint8Array(g.buffers[0])], [7, 8, 9])
      release(g.buffers[0])
    } finally {
      done()
    }
  })
})
