/**
 * Small gifts given in one turn share messages (Batch, type 11): what goes on the wire, order with
 * everything else the channel sends, close() in the same turn, a reader that falls behind (it stops
 * reading rather than failing the writer), and hostile batches: each closes the channel with a
 * clear error and leaks no fd.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { alloc, channelPair, isGiftable, pageSize, release } from '../src/index.ts'
import { native } from '../src/native.ts'
import { INLINE_MAX, MAX_BATCH, MAX_DATA, MAX_MESSAGE, Type, decode } from '../src/wire.ts'
import { digest, fillPattern, withTimeout } from './helpers.ts'
import { expectRefused, packet, rawPair } from './fixtures/raw-wire.ts'

/** Every packet waiting on the raw end now, decoded (their data copied out). */
function readAll (fd: number): Array<{ type: Type, json: unknown, data: Uint8Array }> {
  const buf = new Uint8Array(MAX_MESSAGE + 1)
  const out = new Int32Array(66)
  const got = []
  for (;;) {
    const n = native.recvmsg(fd, buf, out)
    if (n < 0) return got
    const m = decode(buf, n, out[0])
    got.push({ ...m, data: m.data.slice() })
  }
}

const gifts = (n: number, size: number, seed: number): Uint8Array[] => Array.from({ length: n }, (_, i) => fillPattern(new Uint8Array(size), seed + i))

describe('small gifts of one turn share messages', () => {
  test('64 gifts of 1 KiB go as one Batch message, in order, with their meta; each receipt says copy/inline', async () => {
    const { ch, raw, done } = rawPair()
    try {
      const srcs = gifts(64, 1024, 1)
      const want = srcs.map((s) => digest([s]))
      const receipts = await withTimeout(Promise.all(srcs.map((s, i) => ch.gift(s, { meta: { i } }))), 10_000, 'the gifts')
      assert.ok(receipts.every((r) => r.path === 'copy' && r.reason === 'inline' && r.bytes === 1024))
      assert.ok(srcs.every((s) => s.byteLength === 0), 'every source is detached')
      const msgs = readAll(raw)
      assert.equal(msgs.length, 1, 'one message')
      assert.equal(msgs[0].type, Type.Batch)
      const list = (msgs[0].json as { gifts: Array<{ id: number, lengths: number[], meta: { i: number } }> }).gifts
      assert.deepEqual(list.map((g) => g.meta.i), srcs.map((_, i) => i))
      assert.deepEqual(list.map((g) => g.lengths), srcs.map(() => [1024]))
      assert.deepEqual(Array.from({ length: 64 }, (_, i) => digest([msgs[0].data.subarray(i * 1024, (i + 1) * 1024)])), want)
    } finally {
      done()
    }
  })

  test('more than one message holds is split: 100 gifts of 1 KiB take two messages, a gift alone goes as Inline', async () => {
    const { ch, raw, done } = rawPair()
    try {
      await Promise.all(gifts(100, 1024, 7).map((s) => ch.gift(s)))
      const msgs = readAll(raw)
      assert.deepEqual(msgs.map((m) => m.type), [Type.Batch, Type.Batch])
      assert.deepEqual(msgs.map((m) => m.data.byteLength), [MAX_DATA, 100 * 1024 - MAX_DATA])
      await ch.gift(new Uint8Array(10))
      assert.deepEqual(readAll(raw).map((m) => m.type), [Type.Inline])
    } finally {
      done()
    }
  })

  test('order holds with everything else sent in the same turn: gifts, a big gift, a message, more gifts', async () => {
    const [a, b] = channelPair()
    try {
      const small = gifts(5, 100, 20)
      const big = fillPattern(new Uint8Array(alloc(4 * pageSize)), 30)
      const want = [...small.slice(0, 3), big, ...small.slice(3)].map((s) => digest([s]))
      const sent = [a.gift(small[0]), a.gift(small[1]), a.gift(small[2]), a.gift(big), a.send({ after: 4 }), a.gift(small[3]), a.gift(small[4])]
      const got = []
      for (let i = 0; i < 6; i++) got.push(await withTimeout(b.receive(), 10_000, `gift ${i}`))
      await withTimeout(Promise.all(sent), 10_000, 'the sends')
      assert.deepEqual(got.map((g) => digest(g.buffers)), want)
      assert.deepEqual((await b.recv({ timeoutMs: 10_000 })).msg, { after: 4 })
      for (const g of got) for (const buf of g.buffers) if (isGiftable(buf)) release(buf)
    } finally {
      a.close(); b.close()
    }
  })

  test('close() in the same turn sends the held gifts first: the reader still takes them', async () => {
    const [a, b] = channelPair()
    const srcs = gifts(3, 500, 40)
    const want = srcs.map((s) => digest([s]))
    const receipts = srcs.map((s) => a.gift(s))
    a.close()
    assert.ok((await withTimeout(Promise.all(receipts), 10_000, 'the receipts')).every((r) => r.reason === 'inline'))
    for (const w of want) assert.equal(digest((await withTimeout(b.receive(), 10_000, 'a gift')).buffers), w)
    b.close()
  })

  test('gifts whose message cannot be sent fail with their own bytes back, each alone', async () => {
    const { ch, raw, done } = rawPair()
    native.close(raw)
    try {
      const srcs = [...gifts(3, 700, 50), new Uint8Array(new ArrayBuffer(64)).fill(9), fillPattern(new Uint8Array(alloc(1000)), 60)]
      const want = srcs.map((s) => digest([s]))
      const results = await withTimeout(Promise.allSettled(srcs.map((s) => ch.gift(s))), 10_000, 'the gifts')
      results.forEach((r, i) => {
        assert.equal(r.status, 'rejected')
        const err = (r as PromiseRejectedResult).reason as Error & { code: string, buffers: ArrayBuffer[] }
        assert.equal(err.code, 'ERR_PAGEGIFT_PEER_CLOSED')
        assert.equal(err.buffers.length, 1)
        assert.equal(digest(err.buffers), want[i])
        assert.equal(isGiftable(err.buffers[0]), i === 4, 'giftable memory comes back giftable')
        if (i === 4) release(err.buffers[0])
      })
    } finally {
      ch.close()
      void done
    }
  })

  test('a reader that falls behind stops reading instead of failing the writer: 3000 gifts, all arrive in order', { timeout: 60_000 }, async () => {
    const [a, b] = channelPair()
    try {
      let closed = false
      b.once('close', () => { closed = true })
      const receipts = Array.from({ length: 3000 }, (_, i) => a.gift(new Uint32Array([i, i * 7])))
      receipts.forEach((r) => r.catch(() => {}))
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.equal(closed, false, 'the reader did not fail the channel')
      for (let i = 0; i < 3000; i++) {
        const g = await withTimeout(b.receive(), 10_000, `gift ${i}`)
        assert.deepEqual([...new Uint32Array(g.buffers[0])], [i, i * 7])
      }
      await withTimeout(Promise.all(receipts), 10_000, 'the receipts')
    } finally {
      a.close(); b.close()
    }
  })
})

describe('hostile batches close the channel with a clear error and leak no fd', () => {
  const zeros = (n: number): Uint8Array => new Uint8Array(n)
  const entry = (id: number, n: number): string => `{"id":${id},"lengths":[${n}]}`
  const batch = (entries: string[]): string => `{"gifts":[${entries.join(',')}]}`
  const cases: Array<[string, () => Uint8Array, RegExp, number?]> = [
    ['not an object', () => packet(Type.Batch, '[1,2]', zeros(0)), /batch is not an object/],
    ['gifts not an array', () => packet(Type.Batch, '{"gifts":{"id":1}}', zeros(4)), /batch.gifts is not an array/],
    ['no gifts', () => packet(Type.Batch, batch([]), zeros(0)), /batch.gifts is not an array of 1 to/],
    ['more than MAX_BATCH gifts', () => packet(Type.Batch, batch(Array.from({ length: MAX_BATCH + 1 }, (_, i) => entry(i, 1))), zeros(MAX_BATCH + 1)), /batch.gifts is not an array of 1 to/],
    ['lengths say more than arrived (truncated)', () => packet(Type.Batch, batch([entry(1, 100), entry(2, 100)]), zeros(150)), /batch lengths say 200 bytes, 150 arrived|say more than the 150 bytes/],
    ['lengths say less than arrived', () => packet(Type.Batch, batch([entry(1, 100), entry(2, 100)]), zeros(201)), /batch lengths say 200 bytes, 201 arrived/],
    ['a later gift past the end', () => packet(Type.Batch, batch([entry(1, 300), entry(2, 1), entry(3, 1)]), zeros(200)), /more than the 200 bytes that arrived/],
    ['a zero length', () => packet(Type.Batch, batch([entry(1, 4), entry(2, 0)]), zeros(4)), /inline lengths out of range/],
    ['a gift over the inline limit', () => packet(Type.Batch, batch([entry(1, INLINE_MAX + 1)]), zeros(0)), /lengths\[0\] is not an integer/],
    ['a gift that is not an object', () => packet(Type.Batch, batch(['7']), zeros(0)), /batch.gifts\[0\] is not an object/],
    ['a gift with no id', () => packet(Type.Batch, batch([entry(1, 2), '{"lengths":[2]}']), zeros(4)), /id is not an integer/],
    ['a gift that offers a move', () => packet(Type.Batch, batch([`{"id":1,"lengths":[4],"move":[[[0,0,${pageSize}]]]}`]), zeros(4)), /may not offer another path/],
    ['a gift that claims a forced path', () => packet(Type.Batch, batch(['{"id":1,"lengths":[4],"forced":"copy"}']), zeros(4)), /may not offer another path/],
    ['data over the message limit', () => packet(Type.Batch, batch([entry(1, 1)]), zeros(MAX_DATA + 1)), /length over the limit/],
    ['a batch with fds attached', () => packet(Type.Batch, batch([entry(1, 4)]), zeros(4)), /a batch of inline offers with 2 fds/, 2],
  ]
  for (const [name, make, why, nfds = 0] of cases) {
    test(name, async () => {
      await expectRefused(make, () => Array.from({ length: nfds }, () => native.dup(0)), why)
    })
  }

  test('gifts of a valid batch before a bad message stay receivable: a batch is taken whole or not at all', async () => {
    const { ch, raw, done } = rawPair()
    try {
      const closed = new Promise<Error>((resolve) => ch.once('close', resolve))
      native.sendmsg(raw, [packet(Type.Batch, batch([entry(1, 2), entry(2, 3)]), new Uint8Array([1, 2, 3, 4, 5]))], [])
      native.sendmsg(raw, [packet(Type.Batch, batch([entry(3, 2), entry(4, 9)]), new Uint8Array([6, 7]))], [])
      await withTimeout(closed, 10_000, 'the channel to close')
      assert.deepEqual([...new Uint8Array((await ch.receive()).buffers[0])], [1, 2])
      assert.deepEqual([...new Uint8Array((await ch.receive()).buffers[0])], [3, 4, 5])
      await assert.rejects(ch.receive(), { code: 'ERR_PAGEGIFT_PROTOCOL' })
    } finally {
      done()
    }
  })
})
