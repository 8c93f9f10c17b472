/**
 * A raw peer on one end of a real socketpair plays a hostile or broken writer or reader against a
 * Channel in this process (issue 9 items 2, 6, 9b, 9c, 9d).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { Channel, alloc, channelPair, fdOf, pageSize, release } from '../src/index.ts'
import { native } from '../src/native.ts'
import { MAX_MESSAGE, decode, encode, type Decoded } from '../src/wire.ts'
import { digest, fdCount, fillPattern, fixtures, memfdMappings, settle } from './helpers.ts'

/** The raw end: sends framed packets with fds, reads replies (with a deadline). */
class Raw {
  constructor (readonly fd: number) {}
  send (type: number, json: unknown, data?: Uint8Array, fds: number[] = []): void {
    const views = [encode(type, json, data?.byteLength ?? 0, fds.length), ...(data !== undefined ? [data] : [])]
    assert.ok(native.sendmsg(this.fd, views, fds) >= 0)
    for (const fd of fds) native.close(fd) // The kernel carries its own copies.
  }

  async next (timeoutMs = 10_000): Promise<Decoded & { fds: number[] }> {
    const buf = new Uint8Array(MAX_MESSAGE + 1)
    const out = new Int32Array(66)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const n = native.recvmsg(this.fd, buf, out)
      if (n > 0) return { ...decode(buf, n, out[0]), fds: Array.from(out.subarray(2, 2 + out[0])) }
      if (Date.now() > deadline) throw new Error('no message from the channel in time')
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  close (): void { native.close(this.fd) }
}

function pair (): { ch: Channel, raw: Raw } {
  const [a, b] = native.seqpacketPair() as number[]
  return { ch: new Channel(a), raw: new Raw(b) }
}

const dups = (n: number): number[] => Array.from({ length: n }, () => native.dup(0))

describe('fds a message type does not expect are closed (item 6)', () => {
  test('Skip, Cma and Data replies with 10 fds each, and a Splice reply with 2: no fd stays open', { timeout: 30_000 }, async () => {
    await settle()
    const before = fdCount()
    const { ch, raw } = pair()
    const got = ch.receive({ into: new Uint8Array(10) })
    raw.send(1, { id: 1, lengths: [10] })
    assert.deepEqual((await raw.next()).json, { id: 1, path: 'cma' })
    raw.send(9, { id: 1, reason: 'no cma here' }, undefined, dups(10))
    assert.deepEqual((await raw.next()).json, { id: 1, path: 'splice' })
    raw.send(9, { id: 1, reason: 'no splice here' }, undefined, dups(10))
    assert.deepEqual((await raw.next()).json, { id: 1, path: 'copy' })
    raw.send(5, { id: 1 }, new Uint8Array(10).fill(7), dups(10))
    const g = await got
    assert.equal(g.path, 'copy')
    assert.deepEqual([...new Uint8Array(g.buffers[0])], new Array(10).fill(7))
    assert.equal((await raw.next()).type, 2, 'Done')
    // A Cma reply with fds, then a Splice reply with two fds: the channel fails, nothing leaks.
    const got2 = ch.receive()
    got2.catch(() => {})
    raw.send(1, { id: 2, lengths: [10] })
    await raw.next()
    raw.send(8, { id: 2, pid: 1, iov: [4096, 10] }, undefined, dups(10))
    const second = await raw.next()
    assert.deepEqual(second.json, { id: 2, path: 'splice' }, 'an unverifiable cma pid is not used')
    raw.send(4, { id: 2 }, undefined, dups(2))
    await assert.rejects(got2, { code: 'ERR_PAGEGIFT_PROTOCOL', message: /2 fds/ })
    raw.close()
    ch.close()
    await settle()
    assert.equal(fdCount(), before)
  })

  test('the queue of unreceived offers is bounded: a flood closes the channel and closes every fd', { timeout: 30_000 }, async () => {
    await settle()
    const before = fdCount()
    const { ch, raw } = pair()
    const closed = new Promise<Error>((resolve) => ch.once('close', resolve))
    const memfd = native.memfdCreate('flood', pageSize, true)
    for (let i = 1; i <= 40; i++) {
      const fds = Array.from({ length: 32 }, () => native.dup(memfd))
      raw.send(1, { id: i, lengths: Array(32).fill(pageSize), move: Array.from({ length: 32 }, (_, j) => [[j, 0, pageSize]]) }, undefined, fds)
    }
    const err = await closed
    assert.equal((err as NodeJS.ErrnoException).code, 'ERR_PAGEGIFT_OVERFLOW')
    assert.ok(fdCount() - before <= 1024 + 2, `at most 1024 fds held by queued offers, besides our raw end and memfd (held ${fdCount() - before})`)
    // Offers of pages stay receivable after a close; taking them lets go of the rest.
    for (;;) {
      const g = await ch.receive().catch(() => undefined)
      if (g === undefined) break
      for (const b of g.buffers) release(b)
    }
    native.close(memfd)
    raw.close()
    await settle()
    assert.equal(fdCount(), before)
  })
})

describe('a gift in flight is pinned (item 2)', () => {
  test('release() and fdOf() of a buffer whose cma gift has not settled are refused; the bytes arrive intact', { timeout: 30_000 }, async () => {
    const [a, b] = channelPair()
    const ab = alloc(64 * pageSize)
    new Uint8Array(ab).fill(9)
    const receipt = a.gift(ab, { path: 'cma' })
    assert.throws(() => release(ab), { code: 'ERR_PAGEGIFT_RELEASED' })
    assert.throws(() => fdOf(ab), { code: 'ERR_PAGEGIFT_RELEASED' })
    const others = Array.from({ length: 4 }, () => alloc(64 * pageSize))
    const g = await b.receive()
    assert.equal(g.path, 'cma')
    assert.ok(new Uint8Array(g.buffers[0]).every((x) => x === 9), 'the reader got the gifted bytes, not reused memory')
    assert.equal((await receipt).path, 'cma')
    for (const x of [...others, ...g.buffers]) release(x)
    a.close(); b.close()
  })

  test('a receive target cannot be released while the receive runs', { timeout: 30_000 }, async () => {
    const { ch, raw } = pair()
    const into = alloc(pageSize)
    const got = ch.receive({ into: new Uint8Array(into, 0, 10) })
    raw.send(1, { id: 1, lengths: [10] })
    await raw.next()
    assert.throws(() => release(into), { code: 'ERR_PAGEGIFT_BUSY' })
    raw.send(6, { id: 1, code: 'ERR_X', message: 'no' })
    await assert.rejects(got, { code: 'ERR_X' })
    release(into)
    raw.close(); ch.close()
  })

  test('a Done sent early by the reader does not settle a splice the writer is still serving', { timeout: 30_000 }, async () => {
    const { ch, raw } = pair()
    const big = fillPattern(new Uint8Array(16 << 20), 4)
    const want = digest([big])
    const receipt = ch.gift(big, { path: 'splice', timeoutMs: 1500 })
    assert.equal((await raw.next()).type, 1, 'Offer')
    raw.send(3, { id: 1, path: 'splice' })
    const reply = await raw.next()
    assert.equal(reply.type, 4)
    raw.send(2, { id: 1, path: 'splice' })
    const err = await receipt.then(() => assert.fail('16 MiB cannot have been delivered: the reader read none of it'), (e: Error & { code: string, buffers?: ArrayBuffer[] }) => e)
    assert.equal(err.code, 'ERR_PAGEGIFT_TIMEOUT')
    assert.equal(digest(err.buffers as ArrayBuffer[]), want, 'the data comes back whole')
    native.close(reply.fds[0])
    raw.close(); ch.close()
  })
})

describe('smaller items (9b, 9c, 9d)', () => {
  test('9b: a failed gift of a view hands back the whole buffer, not just the view', { timeout: 30_000 }, async () => {
    const { ch, raw } = pair()
    // Past the inline limits: an inline gift would be in the kernel before the reader could fail it.
    const heap = fillPattern(new Uint8Array(400_000), 5)
    const giftable = fillPattern(new Uint8Array(alloc(3 * pageSize)), 6)
    const wants = [digest([heap]), digest([giftable])]
    const gift = ch.gift([heap.subarray(100, 300_100), giftable.subarray(pageSize, 2 * pageSize)])
    await raw.next()
    raw.close()
    const err = await gift.then(() => assert.fail('not delivered'), (e: Error & { buffers?: ArrayBuffer[] }) => e)
    assert.deepEqual(err.buffers?.map((b) => b.byteLength), [400_000, 3 * pageSize])
    assert.deepEqual(err.buffers?.map((b) => digest([b])), wants)
    release((err.buffers as ArrayBuffer[])[1])
    ch.close()
  })

  test('9c: when the reader cannot send Done, it does not keep copied bytes the writer takes back', { timeout: 30_000 }, async () => {
    const { ch, raw } = pair()
    const got = ch.receive()
    raw.send(1, { id: 1, lengths: [10] })
    await raw.next()
    raw.send(9, { id: 1, reason: 'no' })
    await raw.next()
    raw.send(9, { id: 1, reason: 'no' })
    await raw.next()
    raw.send(5, { id: 1 }, new Uint8Array(10).fill(1))
    raw.close()
    await assert.rejects(got, { code: 'ERR_PAGEGIFT_PEER_CLOSED' })
    ch.close()
  })

  test('9c: pages offered by move stay the reader\'s when the channel closes: the writer does not take them back too', { timeout: 30_000 }, async () => {
    const [a, b] = channelPair()
    await settle()
    const maps = memfdMappings()
    const ab = alloc(17 * pageSize) // past the inline limit (64 KiB), so the pages are offered by move
    fillPattern(new Uint8Array(ab), 7)
    const want = digest([ab])
    const gift = a.gift(ab)
    await new Promise((resolve) => setTimeout(resolve, 20))
    a.close()
    const err = await gift.then(() => assert.fail('not delivered'), (e: Error & { buffers?: ArrayBuffer[] }) => e)
    assert.deepEqual(err.buffers, [], 'no second owner of the pages')
    const g = await b.receive()
    assert.equal(g.path, 'move')
    assert.equal(digest(g.buffers), want)
    release(g.buffers[0])
    b.close()
    await settle()
    assert.equal(memfdMappings(), maps)
  })

  test('9d: a cma offer naming another process is not read when the socket\'s peer is this process', { timeout: 30_000 }, async () => {
    const bystander = spawn(process.execPath, ['--import', 'tsx', join(fixtures, 'safety-secret.ts')], { stdio: ['pipe', 'pipe', 'inherit'] })
    const line = await new Promise<string>((resolve) => bystander.stdout.once('data', (d) => resolve(String(d))))
    const { pid, addr } = JSON.parse(line)
    const { ch, raw } = pair()
    const into = new Uint8Array(64)
    const got = ch.receive({ into })
    got.catch(() => {})
    raw.send(1, { id: 1, lengths: [64], cma: { pid, iov: [addr, 64] } })
    const ask = await raw.next().catch(() => undefined)
    bystander.stdin.end()
    assert.ok(into.every((x) => x === 0), 'the reader did not copy the bystander\'s secret')
    assert.deepEqual(ask?.json, { id: 1, path: 'splice' }, 'the reader skipped cma and asked for the next path')
    raw.send(6, { id: 1, code: 'ERR_X', message: 'stop' })
    await assert.rejects(got, { code: 'ERR_X' })
    raw.close(); ch.close()
  })

})
