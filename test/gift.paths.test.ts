/** Every path forced, and the automatic choice for each fallback reason, across real processes. */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { alloc, pageSize, type Channel } from '../src/index.ts'
import { INLINE_CHUNKED_MAX } from '../src/wire.ts'
import { ask, digest, fillPattern, spawnPeer, spawnPeerAs, withTimeout, type Peer } from './helpers.ts'

let peer: Peer
let ch: Channel
before(() => { peer = spawnPeer('gift-peer.ts'); ch = peer.ch })
after(async () => { await ch.send({ op: 'exit' }); await peer.exited; ch.close() })

/** Gifts `views` to the child and returns our receipt with the child's report of what arrived. */
async function giftToChild (views: ArrayBufferView[] | ArrayBuffer[], opts: { path?: 'move' | 'cma' | 'splice' | 'copy', into?: { kind: string, size: number, offset: number } } = {}) {
  const want = digest(views as ArrayBufferView[])
  const report = ask(ch, { op: 'receive', into: opts.into })
  const receipt = await ch.gift(views, { path: opts.path, meta: { n: views.length } })
  const got = await report
  assert.equal(got.digest, want, 'the child received exactly the gifted bytes')
  assert.equal(got.path, receipt.path, 'both sides agree on the path')
  for (const v of views) assert.equal(v.byteLength, 0, 'the sender\'s buffer is detached after gift()')
  return { receipt, got }
}

/** Pages enough to be past the inline limit of memory that can move, so that the ladder decides. */
const N = 20
/** Bytes (whole pages) past the inline limit of memory that cannot move. */
const BEYOND = INLINE_CHUNKED_MAX + 4 * pageSize
const giftable = (size: number, seed: number): ArrayBuffer => { const ab = alloc(size); fillPattern(new Uint8Array(ab), seed); return ab }
const heap = (size: number, seed: number): ArrayBuffer => fillPattern(new Uint8Array(size), seed).buffer as ArrayBuffer

describe('forced paths', () => {
  for (const path of ['move', 'cma', 'splice', 'copy'] as const) {
    test(`${path}: 3 MiB of giftable pages arrive intact`, async () => {
      const { receipt, got } = await giftToChild([giftable(3 << 20, 1)], { path })
      assert.equal(receipt.path, path)
      assert.equal(receipt.bytes, 3 << 20)
      assert.deepEqual(got.meta, { n: 1 })
    })
  }
  for (const path of ['cma', 'splice', 'copy'] as const) {
    test(`${path}: heap memory, several buffers`, async () => {
      const { receipt } = await giftToChild([heap(100_000, 2), heap(1, 3), heap(70_001, 4)], { path })
      assert.equal(receipt.path, path)
      assert.equal(receipt.bytes, 170_002)
    })
  }
  test('cma of a large multi-buffer gift (read by two threads at once) arrives intact', async () => {
    const { receipt } = await giftToChild([heap(20 << 20, 21), giftable((30 << 20) + 5, 22), heap(3, 23)], { path: 'cma' })
    assert.equal(receipt.path, 'cma')
    assert.equal(receipt.bytes, (50 << 20) + 8)
  })
  test('move of heap memory fails before anything is detached', async () => {
    const buf = heap(pageSize, 5)
    await assert.rejects(ch.gift(buf, { path: 'move' }), { code: 'ERR_PAGEGIFT_PATH_UNAVAILABLE', message: /not giftable/ })
    assert.equal(buf.byteLength, pageSize, 'the buffer is still the caller\'s')
  })
  test('forced move into a target that cannot take pages: the reader refuses, the gift stays queued', async () => {
    const buf = giftable(2 * pageSize, 6)
    const want = digest([buf])
    const receipt = ch.gift(buf, { path: 'move' })
    await assert.rejects(ask(ch, { op: 'receive', into: { kind: 'heap', size: 2 * pageSize, offset: 0 } }), { code: 'ERR_PAGEGIFT_PATH_UNAVAILABLE' })
    const got = await ask(ch, { op: 'receive' })
    assert.equal(got.digest, want)
    assert.equal((await receipt).path, 'move')
  })
})

describe('automatic choice', () => {
  test('giftable whole pages move', async () => {
    const { receipt } = await giftToChild([giftable(N * pageSize, 7)])
    assert.deepEqual(receipt, { path: 'move', bytes: N * pageSize })
  })
  test('a giftable buffer of a partial last page still moves (its tail is its own)', async () => {
    const { receipt } = await giftToChild([giftable(N * pageSize + 123, 8)])
    assert.equal(receipt.path, 'move')
  })
  const cases: Array<[string, () => ArrayBufferView[] | ArrayBuffer[], RegExp]> = [
    ['heap source', () => [heap(BEYOND, 9)], /source not giftable/],
    ['unaligned view of giftable memory', () => [new Uint8Array(giftable(BEYOND + 2 * pageSize, 10), 100, BEYOND)], /not page aligned/],
    ['partial pages inside giftable memory', () => [new Uint8Array(giftable(BEYOND + 2 * pageSize, 11), 0, BEYOND + 1)], /whole number of pages/],
  ]
  for (const [name, make, why] of cases) {
    test(`${name} falls back to cma with the reason`, async () => {
      const views = make()
      const want = digest(views as ArrayBufferView[])
      const report = ask(ch, { op: 'receive' })
      const receipt = await ch.gift(views)
      const got = await report
      assert.equal(got.digest, want)
      assert.equal(receipt.path, 'cma')
      assert.match(receipt.reason ?? '', why)
    })
  }
  test('a pooled Buffer forced to a path is copied first, never detached', async () => {
    const pooled = Buffer.from('hello pooled world')
    const neighbour = Buffer.from('a neighbour in the pool')
    const report = ask(ch, { op: 'receive' })
    const receipt = await ch.gift(pooled, { path: 'cma' })
    assert.equal((await report).digest, digest([Buffer.from('hello pooled world')]))
    assert.equal(neighbour.toString(), 'a neighbour in the pool', 'the pool is not detached')
    assert.equal(receipt.path, 'cma')
  })
  test('into a heap target: cma, reason names the target', async () => {
    const { receipt } = await giftToChild([giftable(N * pageSize, 12)], { into: { kind: 'heap', size: N * pageSize, offset: 0 } })
    assert.equal(receipt.path, 'cma')
    assert.match(receipt.reason ?? '', /into target not giftable/)
  })
  test('into an unaligned giftable target: cma', async () => {
    const { receipt } = await giftToChild([giftable(N * pageSize, 13)], { into: { kind: 'alloc', size: N * pageSize, offset: 8 } })
    assert.equal(receipt.path, 'cma')
    assert.match(receipt.reason ?? '', /not page aligned/)
  })
  test('into an aligned giftable target: move, pages land in the reader\'s own buffer', async () => {
    const { receipt } = await giftToChild([giftable(N * pageSize, 14), giftable(2 * pageSize, 15)], { into: { kind: 'alloc', size: (N + 2) * pageSize, offset: pageSize } })
    assert.equal(receipt.path, 'move')
  })
  test('pages without F_SEAL_SHRINK are never mapped by the reader', async () => {
    // The writer is a child whose alloc() makes unsealed memfds (a test hook); we are the reader.
    const p = spawnPeer('gift-peer.ts', { PAGEGIFT_TEST_HOOKS: 'alloc:unsealed=on' })
    try {
      const reply = ask(p.ch, { op: 'gift', kind: 'alloc', sizes: [N * pageSize], seed: 16 })
      const g = await withTimeout(p.ch.receive(), 60_000, 'the unsealed gift')
      const r = await reply
      assert.equal(digest(g.buffers), r.digest)
      assert.equal(r.path, g.path, 'both sides agree on the path')
      assert.notEqual(g.path, 'move')
      assert.match(g.reason ?? '', /F_SEAL_SHRINK/)
    } finally {
      await p.ch.send({ op: 'exit' }); await withTimeout(p.exited, 30_000, 'the writer to exit'); p.ch.close()
    }
  })
  test('into too small: a clear error, and the gift can still be received', async () => {
    const buf = giftable(N * pageSize, 17)
    const want = digest([buf])
    const receipt = ch.gift(buf)
    await assert.rejects(ask(ch, { op: 'receive', into: { kind: 'alloc', size: pageSize, offset: 0 } }), { code: 'ERR_PAGEGIFT_INTO_TOO_SMALL' })
    assert.equal((await ask(ch, { op: 'receive' })).digest, want)
    assert.equal((await receipt).path, 'move')
  })
})

describe('fallbacks below cma', () => {
  test('cma disabled on the reader side: splice, with the reason', async () => {
    const p = spawnPeer('gift-peer.ts', { PAGEGIFT_DISABLE: 'cma' })
    try {
      const views = [heap(BEYOND, 18)]
      const want = digest(views)
      // The child gifts to us; our side reads, so disable cma on the child (writer) side.
      const report = await ask(p.ch, { op: 'pid' })
      assert.equal(typeof report.pid, 'number')
      const reply = ask(p.ch, { op: 'gift', kind: 'heap', sizes: [BEYOND], seed: 18 })
      const g = await p.ch.receive()
      const r = await reply
      assert.equal(r.digest, want)
      assert.equal(digest(g.buffers), want)
      assert.equal(g.path, 'splice')
      assert.match(g.reason ?? '', /cma disabled/)
    } finally {
      await p.ch.send({ op: 'exit' }); await p.exited; p.ch.close()
    }
  })
  test('cma and splice disabled: copy', async () => {
    const p = spawnPeer('gift-peer.ts', { PAGEGIFT_DISABLE: 'cma,splice' })
    try {
      const reply = ask(p.ch, { op: 'gift', kind: 'heap', sizes: [BEYOND, 3], seed: 19 })
      const g = await p.ch.receive()
      assert.equal(digest(g.buffers), (await reply).digest)
      assert.equal(g.path, 'copy')
      assert.match(g.reason ?? '', /splice disabled/)
    } finally {
      await p.ch.send({ op: 'exit' }); await p.exited; p.ch.close()
    }
  })
  test('a reader that may not read our memory (another uid): process_vm_readv EPERM, then splice', { skip: process.getuid?.() !== 0 ? 'needs root to start a child as another uid' : false }, async () => {
    const p = await spawnPeerAs('gift-peer.ts', { uid: 65534, gid: 65534 })
    try {
      const views = [heap(300_000, 20)]
      const want = digest(views)
      const report = ask(p.ch, { op: 'receive' })
      const receipt = await withTimeout(p.ch.gift(views), 60_000, 'the gift to a child of uid 65534')
      assert.equal((await report).digest, want)
      assert.equal(receipt.path, 'splice')
      assert.match(receipt.reason ?? '', /process_vm_readv EPERM/)
    } finally {
      await p.ch.send({ op: 'exit' }).catch(() => {}); await withTimeout(p.exited, 30_000, 'the child of uid 65534 to exit'); p.ch.close()
    }
  })
})
