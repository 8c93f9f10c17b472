/** pagegift/map: the cache itself (LRU, TTL, giftable regions) and its warm handover to a successor. */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { Client } from 'undici'
import { isGiftable } from '../src/index.ts'
import { LiveMap } from '../src/map/index.ts'
import { exited, Service, sleep } from './fixtures/http-harness.ts'

const services: Service[] = []
after(async () => { for (const s of services) await s.stop() })

test('get/set/delete, string and byte values, utf-8 keys; every region is giftable', () => {
  const m = new LiveMap('unit')
  try {
    assert.equal(m.set('a', 'one'), true)
    assert.equal(m.set('ключ', Buffer.from([1, 2, 3])), true)
    assert.equal(m.get('a')?.toString(), 'one')
    assert.deepEqual([...(m.get('ключ') ?? [])], [1, 2, 3])
    assert.equal(m.set('a', 'a longer value than before'), true)
    assert.equal(m.get('a')?.toString(), 'a longer value than before')
    const copy = m.get('a') as Buffer
    m.set('a', 'x')
    assert.equal(copy.toString(), 'a longer value than before', 'get() returns a copy')
    assert.equal(m.delete('a'), true)
    assert.equal(m.get('a'), undefined)
    assert.equal(m.has('ключ'), true)
    assert.equal(m.size, 1)
    assert.deepEqual([m.stats.hits, m.stats.misses], [4, 1])
    for (const r of Object.values(m.exportState().regions)) assert.ok(isGiftable(r))
  } finally {
    m.close()
  }
})

test('TTL: an entry expires; LRU: past maxBytes the least recently used go first', async () => {
  const m = new LiveMap('lru', { maxBytes: 512 * 1024, segmentSize: 64 * 1024 })
  try {
    m.set('short', 'lived', { ttlMs: 40 })
    assert.equal(m.get('short')?.toString(), 'lived')
    await sleep(80)
    assert.equal(m.get('short'), undefined)
    const value = Buffer.alloc(1000, 7)
    for (let i = 0; i < 100; i++) m.set(`hot${i}`, value)
    for (let i = 0; i < 3000; i++) {
      if (i % 100 === 0) {
        await sleep(3) // the access clock counts ms
        for (let j = 0; j < 100; j++) m.get(`hot${j}`)
      }
      assert.equal(m.set(`cold${i}`, value), true)
    }
    assert.ok(m.bytes <= 512 * 1024, `within maxBytes: ${m.bytes}`)
    assert.ok(m.stats.evictions > 2000, `evicted: ${m.stats.evictions}`)
    let hot = 0
    for (let i = 0; i < 100; i++) if (m.get(`hot${i}`) !== undefined) hot++
    let early = 0
    for (let i = 0; i < 100; i++) if (m.get(`cold${i}`) !== undefined) early++
    // Approximate LRU (5 samples, as Redis): most, not all, of the hot entries survive; random eviction would keep a handful.
    assert.ok(hot >= 75, `recently used entries stay: ${hot} of 100`)
    assert.ok(early <= 20, `the least recently used went: ${early} of 100 left`)
  } finally {
    m.close()
  }
})

test('a 64 MiB cache is warm in the successor: same entries, same bytes, every lookup a hit, no reload', async () => {
  const svc = new Service({ CACHE_MB: '64' })
  services.push(svc)
  const g1 = await svc.start()
  const client = new Client(`http://127.0.0.1:${g1.event.port as number}`)
  const ask = async (path: string): Promise<Record<string, unknown>> => {
    const r = await client.request({ path, method: 'GET' })
    return JSON.parse(await r.body.text()) as Record<string, unknown>
  }
  const before = await ask('/cachestats')
  assert.equal(before.size, 65536)
  await svc.start()
  await exited(g1.child.pid as number)
  const afterStats = await ask('/cachestats')
  assert.deepEqual([afterStats.size, afterStats.bytes, afterStats.sets], [65536, before.bytes, 0], 'adopted, not refilled')
  for (let n = 0; n < 200; n++) {
    const r = await ask(`/cache?i=${(n * 7919) % 65536}`)
    assert.deepEqual(r, { hit: true, ok: true })
  }
  await client.close()
})
