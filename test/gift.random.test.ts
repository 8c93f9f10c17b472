/**
 * Property-style gifts: many random sizes, alignments, sources, targets and paths, checked byte for
 * byte in a real child. The seed is printed on failure; set PAGEGIFT_SEED to replay it.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { alloc, isGiftable, pageSize, type Channel } from '../src/index.ts'
import { INLINE_CHUNKED_MAX, INLINE_MAX_PAGES } from '../src/wire.ts'
import { ask, digest, fillPattern, spawnPeer, type Peer } from './helpers.ts'

const seed = Number(process.env.PAGEGIFT_SEED ?? Math.floor(Math.random() * 2 ** 31))
let peer: Peer
let ch: Channel
before(() => { peer = spawnPeer('gift-peer.ts'); ch = peer.ch })
after(async () => { await ch.send({ op: 'exit' }); await peer.exited; ch.close() })

function rng (s: number): () => number {
  return () => { s = (s * 1103515245 + 12345) % 2 ** 31; return s / 2 ** 31 }
}

test(`100 random gifts arrive intact (seed ${seed})`, async () => {
  const r = rng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]
  for (let i = 0; i < 100; i++) {
    const forced = pick([undefined, undefined, 'move', 'cma', 'splice', 'copy'] as const)
    const movable = forced === 'move'
    const count = 1 + Math.floor(r() * 3)
    const views = Array.from({ length: count }, (_, j) => {
      const pages = 1 + Math.floor(r() * 64)
      const size = movable || r() < 0.5 ? pages * pageSize : 1 + Math.floor(r() * pages * pageSize)
      const offset = movable ? 0 : pick([0, 0, pageSize, 1 + Math.floor(r() * 100)])
      const ab = movable || r() < 0.6 ? alloc(size + offset) : new ArrayBuffer(size + offset)
      return fillPattern(new Uint8Array(ab, offset, size), seed + i * 7 + j)
    })
    const total = views.reduce((a, v) => a + v.byteLength, 0)
    const intoKind = movable ? pick([undefined, 'alloc']) : pick([undefined, 'heap', 'alloc'])
    const into = intoKind === undefined ? undefined : { kind: intoKind, size: total + Math.floor(r() * 3) * pageSize, offset: movable ? 0 : pick([0, pageSize, 8]) }
    const want = digest(views)
    const plain = views.every((v) => !isGiftable(v.buffer as ArrayBuffer))
    const label = `case ${i} (seed ${seed}): forced=${forced} sizes=${views.map((v) => `${v.byteOffset}+${v.byteLength}`).join(',')} into=${JSON.stringify(into)}`
    const report = ask(ch, { op: 'receive', into })
    const receipt = await ch.gift(views, { path: forced }).catch((err: Error) => assert.fail(`${label}: ${err.message}`))
    const got = await report
    assert.equal(got.digest, want, label)
    assert.equal(got.bytes, total, label)
    if (forced !== undefined) assert.equal(receipt.path, forced, label)
    // Unforced gifts up to the inline limit take one message (plain memory: up to INLINE_CHUNKED_MAX,
    // in several); bigger ones never go inline.
    if (forced === undefined && (total <= INLINE_MAX_PAGES || (plain && total <= INLINE_CHUNKED_MAX))) assert.equal(receipt.reason, 'inline', label)
    if (total > INLINE_CHUNKED_MAX) assert.notEqual(receipt.reason, 'inline', label)
    if (receipt.reason === 'inline') assert.equal(receipt.path, 'copy', label)
  }
})

test('50 gifts in flight at once arrive in order', async () => {
  const report = ask(ch, { op: 'receive-many', n: 50 })
  const wants: string[] = []
  const receipts = []
  for (let i = 0; i < 50; i++) {
    // Inline gifts and bigger ones mixed: they still arrive in the order given.
    const size = (i % 7 + 1) * 3000 + (i % 2) * pageSize + (i % 5 === 0 ? 100_000 : 0)
    const ab = i % 3 === 0 ? alloc(size) : new ArrayBuffer(size)
    const v = fillPattern(new Uint8Array(ab), 1000 + i)
    wants.push(digest([v]))
    receipts.push(ch.gift(v, { meta: { i } }))
  }
  const all = await Promise.all(receipts)
  const gifts = (await report).gifts as Array<{ meta: { i: number }, digest: string, path: string }>
  assert.deepEqual(gifts.map((g) => g.meta.i), Array.from({ length: 50 }, (_, i) => i))
  assert.deepEqual(gifts.map((g) => g.digest), wants)
  assert.deepEqual(gifts.map((g) => g.path), all.map((r) => r.path))
})

test('a 4 KiB gift goes inline, a 1 GiB gift moves', async () => {
  for (const [size, path] of [[4096, 'copy'], [2 ** 30, 'move']] as const) {
    const ab = alloc(size)
    const u = new Uint8Array(ab)
    const at = [0, size >> 1, size - 1]
    at.forEach((p, k) => { u[p] = 10 + k })
    const report = ask(ch, { op: 'receive-sample', at })
    assert.equal((await ch.gift(ab)).path, path)
    const got = await report
    assert.deepEqual(got.sample, [10, 11, 12])
    assert.equal(got.bytes, size)
  }
})

test('the event loop keeps running while a large copy is received', async () => {
  const p = spawnPeer('gift-peer.ts')
  try {
    await ask(p.ch, { op: 'pid' })
    let ticks = 0
    const timer = setInterval(() => { ticks++ }, 5)
    const into = new Uint8Array(256 << 20)
    into.fill(1)
    const reply = ask(p.ch, { op: 'gift', kind: 'heap', sizes: [256 << 20], seed: 5, path: 'splice' })
    const start = process.hrtime.bigint()
    const ticksBefore = ticks
    const g = await p.ch.receive({ into })
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    clearInterval(timer)
    assert.equal(g.path, 'splice')
    assert.equal(digest([into]), (await reply).digest)
    // The copy runs on the threadpool: timers fire during it (a blocked loop would show none).
    if (ms > 50) assert.ok(ticks - ticksBefore >= 2, `only ${ticks - ticksBefore} timer ticks in ${ms.toFixed(0)} ms`)
  } finally {
    await p.ch.send({ op: 'exit' }); await p.exited; p.ch.close()
  }
})
