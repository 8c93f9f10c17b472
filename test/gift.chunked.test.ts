/**
 * Plain memory past one message's bytes (up to INLINE_CHUNKED_MAX) goes inline in two messages: the offer with the first chunk, then Data messages back to back, and no reply. Their
 * order, `into`, failure mid-way, and hostile sequences, each refused with a clear error and no leak.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { channelPair, isGiftable, release, trimReceivePool, type Gift } from '../src/index.ts'
import { native } from '../src/native.ts'
import { INLINE_CHUNKED_MAX, INLINE_MAX, MAX_DATA, Type } from '../src/wire.ts'
import { ask, digest, fdCount, fillPattern, memfdMappings, settle, spawnPeer, withTimeout } from './helpers.ts'
import { expectRefused, packet, rawPair, readRaw } from './fixtures/raw-wire.ts'

const drop = (g: Gift): void => { for (const b of g.buffers) if (isGiftable(b)) release(b) }

describe('several messages, no reply', () => {
  test('the offer with the first chunk, then Data messages; gift() resolves with nothing sent back', async () => {
    const { ch, raw, done } = rawPair()
    try {
      const size = INLINE_CHUNKED_MAX - 100
      const src = fillPattern(new Uint8Array(size), 1)
      const want = digest([src])
      const receipt = await withTimeout(ch.gift(src, { meta: { n: 1 } }), 10_000, 'the gift')
      assert.deepEqual(receipt, { path: 'copy', bytes: size, reason: 'inline' })
      assert.equal(src.byteLength, 0, 'the writer\'s buffer is detached')
      const head = await readRaw(raw)
      assert.equal(head?.type, Type.Inline)
      assert.deepEqual(head?.json, { id: 1, lengths: [size], meta: { n: 1 }, more: 1 })
      const rest = [await readRaw(raw)]
      assert.deepEqual(rest.map((m) => [m?.type, m?.json, m?.data.byteLength]), [[Type.Data, { id: 1 }, size - MAX_DATA]])
      assert.equal(digest([head?.data as Uint8Array, ...rest.map((m) => m?.data as Uint8Array)]), want)
      assert.equal(native.recvmsg(raw, new Uint8Array(64), new Int32Array(66)), -native.constants.EAGAIN, 'nothing more')
    } finally {
      done()
    }
  })

  test('in order with small gifts, other chunked gifts and control messages; many buffers; receive pool memory', async () => {
    const [a, b] = channelPair()
    try {
      const sizes = [10, 100_000, 5, 70_000, INLINE_CHUNKED_MAX]
      const views = sizes.map((n, i) => fillPattern(new Uint8Array(n), 10 + i))
      const wants = views.map((v) => digest([v]))
      const many = Array.from({ length: 12 }, (_, i) => fillPattern(new Uint8Array(10_000), 30 + i))
      const manyWant = digest(many)
      const receipts = [a.gift(views[0]), a.gift(views[1]), a.send({ between: true }), a.gift(views[2]), a.gift(views[3]), a.gift(many), a.gift(views[4])]
      const got: Gift[] = []
      for (let i = 0; i < 6; i++) got.push(await withTimeout(b.receive(), 10_000, `gift ${i}`))
      const msg = await b.recv({ timeoutMs: 10_000 })
      assert.deepEqual(msg.msg, { between: true })
      await Promise.all(receipts)
      assert.deepEqual(got.map((g) => digest(g.buffers)), [wants[0], wants[1], wants[2], wants[3], manyWant, wants[4]])
      assert.ok(got.every((g) => g.path === 'copy' && g.reason === 'inline'))
      assert.deepEqual(got[4].buffers.map((x) => x.byteLength), many.map(() => 10_000))
      assert.ok(got[4].buffers.every((x) => !isGiftable(x)), 'several buffers arrive as plain ArrayBuffers (no fd each)')
      assert.ok(isGiftable(got[1].buffers[0]), 'a gift past one message lands in giftable (receive pool) memory')
      assert.ok(!isGiftable(got[0].buffers[0]), 'a one-message gift is a plain ArrayBuffer')
      for (const g of got) drop(g)
      assert.ok(trimReceivePool() > 0, 'released, its pages went back to the pool')
    } finally {
      a.close(); b.close()
    }
  })

  test('an inline gift of more buffers than sendmsg takes views is joined, not refused (one message or several)', async () => {
    const [a, b] = channelPair()
    try {
      for (const each of [100, 10_000]) {
        const bufs = Array.from({ length: 12 }, (_, i) => fillPattern(new Uint8Array(each), i))
        const want = digest(bufs)
        const [r, g] = await Promise.all([a.gift(bufs), b.receive({ timeoutMs: 10_000 })])
        assert.equal(r.reason, 'inline')
        assert.equal(digest(g.buffers), want)
        drop(g)
      }
    } finally {
      a.close(); b.close()
    }
  })

  test('into: the bytes are copied there, and the gift\'s own buffers go back to the pool', async () => {
    const [a, b] = channelPair()
    try {
      trimReceivePool()
      const src = fillPattern(new Uint8Array(100_000), 3)
      const want = digest([src])
      await withTimeout(a.gift(src), 10_000, 'the gift, sent before any receive')
      const into = new Uint8Array(150_000)
      const g = await withTimeout(b.receive({ into }), 10_000, 'the gift')
      assert.equal(g.reason, 'inline')
      assert.deepEqual(g.buffers, [into.buffer])
      assert.equal(digest([into.subarray(0, 100_000)]), want)
      assert.equal(trimReceivePool(), 102_400, 'the chunked gift\'s buffer was released to the pool')
    } finally {
      a.close(); b.close()
    }
  })

  test('an offer of 1024 small buffers costs the reader no fd per buffer', async () => {
    await settle()
    const fds = fdCount()
    const { ch, raw, done } = rawPair()
    try {
      const lengths = Array.from({ length: 1024 }, () => 100)
      const bytes = fillPattern(new Uint8Array(102_400), 6)
      assert.ok(native.sendmsg(raw, [packet(Type.Inline, `{"id":1,"lengths":[${lengths.join(',')}],"more":1}`, bytes.subarray(0, MAX_DATA))], []) >= 0)
      const before = fdCount()
      assert.ok(native.sendmsg(raw, [packet(Type.Data, '{"id":1}', bytes.subarray(MAX_DATA))], []) >= 0)
      const g = await withTimeout(ch.receive(), 10_000, 'the gift')
      assert.equal(g.buffers.length, 1024)
      assert.equal(digest(g.buffers), digest([bytes]))
      assert.ok(fdCount() - fds <= 3 && fdCount() <= before + 1, `the reader's fds: ${fdCount() - fds} more`)
    } finally {
      done()
    }
  })

  test('an offer that cannot be sent takes its Data messages with it: nothing goes out, the data comes back', async () => {
    const { ch, raw, done } = rawPair()
    try {
      const src = fillPattern(new Uint8Array(100_000), 7)
      const want = digest([src])
      const err = await withTimeout(ch.gift(src, { meta: 'x'.repeat(65_520) }).then(() => undefined, (e: Error & { buffers?: ArrayBuffer[] }) => e), 10_000, 'the gift to fail')
      assert.ok(err !== undefined, 'the gift failed (its offer is over the JSON limit)')
      assert.equal(digest(err.buffers as ArrayBuffer[]), want)
      await new Promise((resolve) => setTimeout(resolve, 50))
      assert.equal(native.recvmsg(raw, new Uint8Array(MAX_DATA + 1024), new Int32Array(66)), -native.constants.EAGAIN, 'no message reached the peer')
    } finally {
      done()
    }
  })

  test('a gift with a timeout is sent in one message at most, so past it the gift walks the ladder', async () => {
    const [a, b] = channelPair()
    try {
      const [r, g] = await Promise.all([a.gift(new Uint8Array(INLINE_MAX + 1), { timeoutMs: 10_000 }), b.receive({ timeoutMs: 10_000 })])
      assert.notEqual(r.reason, 'inline')
      assert.notEqual(g.reason, 'inline')
      drop(g)
    } finally {
      a.close(); b.close()
    }
  })

  test('a writer far ahead of the reader waits: reading stops at 16 MiB of queued gifts, and all arrive in order', async () => {
    await settle()
    const fds = fdCount()
    const [a, b] = channelPair()
    try {
      const n = 300
      const size = 100_000
      const wants: string[] = []
      let sent = 0
      const gifts = Array.from({ length: n }, (_, i) => {
        const src = fillPattern(new Uint8Array(size), 100 + i)
        wants.push(digest([src]))
        return a.gift(src).then((r) => { sent++; return r })
      })
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.ok(sent < n, `the writer waits on a full socket (${sent} of ${n} sent)`)
      assert.ok(fdCount() - fds <= 260, `the reader holds at most about 256 memfds (${fdCount() - fds})`)
      for (let i = 0; i < n; i++) {
        const g = await withTimeout(b.receive(), 10_000, `gift ${i}`)
        assert.equal(digest(g.buffers), wants[i], `gift ${i}`)
        drop(g)
      }
      const receipts = await withTimeout(Promise.all(gifts), 10_000, 'every gift sent')
      assert.ok(receipts.every((r) => r.reason === 'inline'))
    } finally {
      a.close(); b.close()
    }
  })

  test('across processes: a plain Buffer of 120 kB arrives inline, intact', async () => {
    const peer = spawnPeer('gift-peer.ts')
    try {
      const reply = ask(peer.ch, { op: 'gift', kind: 'heap', sizes: [120_000], seed: 4 })
      const g = await withTimeout(peer.ch.receive(), 30_000, 'the gift')
      const r = await reply
      assert.equal(g.reason, 'inline')
      assert.equal(r.reason, 'inline')
      assert.equal(digest(g.buffers), r.digest)
      drop(g)
    } finally {
      await peer.ch.send({ op: 'exit' }); await withTimeout(peer.exited, 30_000, 'the peer to exit'); peer.ch.close()
    }
  })

  test('the channel closes before a gift is all sent: the writer gets every byte back, the reader keeps no part and leaks nothing', async () => {
    await settle()
    const fds = fdCount()
    const maps = memfdMappings()
    const { ch, raw, done } = rawPair()
    try {
      // Control messages fill the socket until one has to wait in the writer's queue: the gift's
      // messages then wait behind it when the peer goes.
      const filler = 'x'.repeat(60_000)
      for (let i = 0; i < 100; i++) {
        const sent = ch.send({ filler })
        const inKernel = await Promise.race([sent.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 50))])
        if (!inKernel) { sent.catch(() => {}); break }
      }
      const src = fillPattern(new Uint8Array(INLINE_CHUNKED_MAX), 5)
      const want = digest([src])
      const gift = ch.gift(src)
      await new Promise((resolve) => setTimeout(resolve, 50))
      native.close(raw)
      const err = await withTimeout(gift.then(() => undefined, (e: Error & { buffers?: ArrayBuffer[] }) => e), 10_000, 'the gift to fail')
      assert.ok(err !== undefined, 'the gift failed')
      assert.equal(digest(err.buffers as ArrayBuffer[]), want, 'its data came back whole')
    } finally {
      done()
    }
    // The reading side of a cut-short gift: it drops the part it has and fails the waiting receive.
    const pair = rawPair()
    const pending = pair.ch.receive()
    pending.catch(() => {})
    assert.ok(native.sendmsg(pair.raw, [packet(Type.Inline, `{"id":1,"lengths":[${2 * MAX_DATA}],"more":1}`, new Uint8Array(MAX_DATA))], []) >= 0)
    native.close(pair.raw)
    await assert.rejects(withTimeout(pending, 10_000, 'the receive to fail'), { code: 'ERR_PAGEGIFT_PEER_CLOSED' })
    pair.ch.close()
    await settle()
    assert.equal(fdCount(), fds, 'no fd left open')
    assert.equal(memfdMappings(), maps, 'no mapping left')
  })
})

describe('hostile multi-message inline gifts close the channel with a clear error and leak no fd', () => {
  const big = (n: number): Uint8Array => new Uint8Array(n)
  const head = (total: number, more: number, id = 1): Uint8Array => packet(Type.Inline, `{"id":${id},"lengths":[${total}],"more":${more}}`, big(MAX_DATA))
  const two = 2 * MAX_DATA
  const cases: Array<[string, Uint8Array[], () => Uint8Array, RegExp, number?]> = [
    ['more that does not fit the lengths', [], () => head(two, 2), /an inline offer of 131072 bytes in 3 messages/],
    ['more messages than the limit allows', [], () => head(two, 1 + Math.ceil(INLINE_CHUNKED_MAX / MAX_DATA)), /in \d+ messages/],
    ['no more where it is due', [], () => packet(Type.Inline, `{"id":1,"lengths":[${two}],"more":"x"}`, big(MAX_DATA)), /more is not an integer/],
    ['a total that fits one message', [], () => packet(Type.Inline, '{"id":1,"lengths":[100],"more":0}', big(100)), /inline lengths out of range/],
    ['a total past the limit', [], () => head(INLINE_CHUNKED_MAX + 1, Math.ceil((INLINE_CHUNKED_MAX + 1) / MAX_DATA) - 1), /lengths\[0\] is not an integer/],
    ['a first chunk that is not full', [], () => packet(Type.Inline, `{"id":1,"lengths":[${two}],"more":1}`, big(MAX_DATA - 1)), /carries 65535 bytes, not 65536/],
    ['a head that also offers a move', [], () => packet(Type.Inline, `{"id":1,"lengths":[${two}],"more":1,"move":[]}`, big(MAX_DATA)), /may not offer another path/],
    ['a head with fds', [], () => head(two, 1), /an inline offer with 1 fds/, 1],
    ['a control message between the chunks', [head(two, 1)], () => packet(Type.Message, '{"msg":1}'), /a message of type 7 came between the messages of inline gift 1/],
    ['another offer between the chunks', [head(two, 1)], () => packet(Type.Inline, '{"id":2,"lengths":[4]}', big(4)), /a message of type 10 came between/],
    ['data for another gift', [head(two, 1)], () => packet(Type.Data, '{"id":2}', big(MAX_DATA)), /data for gift 2 came between the messages of inline gift 1/],
    ['a short chunk', [head(MAX_DATA + 10, 1)], () => packet(Type.Data, '{"id":1}', big(9)), /a chunk of 9 bytes where 10 were due/],
    ['a long chunk', [head(two, 1)], () => packet(Type.Data, '{"id":1}', big(MAX_DATA + 1)), /length over the limit|a chunk of 65537 bytes/],
    ['a chunk with fds', [head(two, 1)], () => packet(Type.Data, '{"id":1}', big(MAX_DATA)), /a chunk of inline gift 1 with 2 fds/, 2],
  ]
  for (const [name, first, make, why, nfds = 0] of cases) {
    test(name, async () => {
      await expectRefused(make, () => Array.from({ length: nfds }, () => native.dup(0)), why, first)
    })
  }
})
