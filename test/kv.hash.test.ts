import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Store } from '../src/kv/store.ts'
import { hashKey, KeyHash } from '../src/kv/keyindex.ts'
import { KvClient } from '../src/kv/client.ts'
import { withUpgradableKv } from './fixtures/kv-proc.ts'

const B = (s: string): Buffer => Buffer.from(s)

function put (st: Store, k: string, v: string): void {
  const kb = B(k)
  const vb = B(v)
  assert.ok(st.write(st.find(kb, 0, kb.length), kb, 0, kb.length, vb, 0, vb.length, 0))
}

function has (st: Store, k: string): boolean {
  const kb = B(k)
  return st.find(kb, 0, kb.length) >= 0
}

test('hash: HalfSipHash-1-3 gives Linux\'s hsiphash test vectors (the index keeps these values across upgrades, so they must never change)', () => {
  // test_vectors_hsiphash of Linux's siphash tests (32-bit build): vector n hashes bytes 0..n-1 under the key 00..07.
  const vectors = [0x5814c896, 0xe7e864ca, 0xbc4b0e30, 0x01539939, 0x7e059ea6, 0x88e3d89b, 0xa0080b65, 0x9d38d9d6,
    0x577999b1, 0xc839caed, 0xe4fa32cf, 0x959246ee, 0x6b28096c, 0x66dd9cd6, 0x16658a7c, 0xd0257b04]
  const h = new KeyHash(0x03020100, 0x07060504)
  const bytes = Buffer.from(Array.from({ length: 16 }, (_, i) => i))
  vectors.forEach((v, n) => assert.equal(h.of(bytes, 0, n), v, `vector ${n}`))
  assert.equal(h.of(Buffer.concat([Buffer.from('xx'), bytes]), 2, 2 + 7), vectors[7], 'an offset into the buffer')
})

test('hash: a seed with its top bits set (three seeds in four) hashes as HalfSipHash-1-3 does', () => {
  // From a reference HalfSipHash-1-3 (Python, checked against Linux's vectors above) under the key fc fd fe ff 83 82 81 80.
  const vectors = [0xdeb4035e, 0x74de61db, 0x3286185e, 0x3124bd5b, 0xc065182e, 0x2224bfa5, 0x3c7f5f67, 0xadcd71bc,
    0x65063f8b, 0x300f0c0a, 0x0479fab9, 0x7c641b14, 0x57e53792, 0x36283e8f, 0x05a3f480, 0x6bb98d30]
  const h = new KeyHash(0xfffefdfc, 0x80818283)
  assert.deepEqual([h.k0, h.k1], [0xfffefdfc, 0x80818283], 'the seed a store exports stays unsigned')
  const bytes = Buffer.from(Array.from({ length: 16 }, (_, i) => i))
  vectors.forEach((v, n) => assert.equal(h.of(bytes, 0, n), v, `vector ${n}`))
})

test('hash: every fresh store draws its own seed, and its meta carries it', () => {
  const a = new Store()
  const b = new Store()
  assert.notDeepEqual([a.keyHash.k0, a.keyHash.k1], [b.keyHash.k0, b.keyHash.k1])
  assert.notEqual(a.keyHash.of(B('same key'), 0, 8), b.keyHash.of(B('same key'), 0, 8))
  assert.deepEqual(a.exportState().meta.seed, [a.keyHash.k0, a.keyHash.k1])
  assert.equal(a.exportState().meta.version, 2)
})

test('hash: an adopted store keeps the seed and finds every key; a bad seed is refused', () => {
  const a = new Store({ initialSlots: 64 })
  for (let i = 0; i < 5000; i++) put(a, `key:${i}`, `v${i}`)
  const b = Store.adopt(a.exportState())
  assert.deepEqual([b.keyHash.k0, b.keyHash.k1], [a.keyHash.k0, a.keyHash.k1])
  for (let i = 0; i < 5000; i++) assert.ok(has(b, `key:${i}`), `key:${i}`)
  const bad = a.exportState()
  assert.throws(() => Store.adopt({ ...bad, meta: { ...bad.meta, seed: [1, -1] } }), /bad hash seed/)
  assert.throws(() => Store.adopt({ ...bad, meta: { ...bad.meta, seed: undefined } }), /bad hash seed/)
})

test('hash: a store from before seeding (meta version 1) is adopted with its unseeded hash, and stays version 1', () => {
  const fresh = new Store({ initialSlots: 64 }).exportState()
  const { seed: _seed, ...rest } = fresh.meta
  const old = Store.adopt({ regions: fresh.regions, meta: { ...rest, version: 1 } })
  assert.equal(old.keyHash.legacy, true)
  for (let i = 0; i < 500; i++) put(old, `k${i}`, 'v')
  const again = Store.adopt(old.exportState())
  assert.equal(again.exportState().meta.version, 1)
  for (let i = 0; i < 500; i++) assert.ok(has(again, `k${i}`))
})

test('hash: keys that all share one home slot under the unseeded hash spread out under the seeded one', () => {
  const mask = 4095
  const target = hashKey(B('k0'), 0, 2) & mask
  const colliding: Buffer[] = []
  for (let i = 0; colliding.length < 64; i++) {
    const k = B(`k${i}`)
    if ((hashKey(k, 0, k.length) & mask) === target) colliding.push(k)
  }
  const seeded = KeyHash.random()
  const slots = new Set(colliding.map((k) => seeded.of(k, 0, k.length) & mask))
  assert.ok(slots.size > 48, `only ${slots.size} distinct slots for 64 keys`)
  // In a store: the longest probe run stays short.
  const st = new Store({ initialSlots: 4096 })
  for (const k of colliding) put(st, k.toString(), 'v')
  let run = 0
  let longest = 0
  for (let i = 0; i < st.index.capacity; i++) {
    run = st.index.t[i << 2] !== 0 ? run + 1 : 0
    longest = Math.max(longest, run)
  }
  assert.ok(longest < 8, `a probe run of ${longest}`)
})

test('hash: the seed survives a live upgrade: every key is still found (a new seed would lose them)', async () => {
  await withUpgradableKv('kv-hash-', [], async (kv) => {
    const c = await KvClient.connect(kv.port)
    const keys = Array.from({ length: 3000 }, (_, i) => `seed:${i}`)
    await c.pipeline(keys.map((k) => ['SET', k, k]))
    await kv.upgrade()
    const got = await c.pipeline([['MGET', ...keys]])
    assert.deepEqual((got[0] as Buffer[]).map(String), keys)
    assert.match(String(await c.call('INFO', 'pagegift')), /generation:2\r\n/)
    await c.close()
  })
})
