import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Store, KEEP_TTL } from '../src/kv/store.ts'
import { Compactor } from '../src/kv/compactor.ts'
import { ExpirySweeper } from '../src/kv/expiry.ts'
import type { IndexMigration } from '../src/kv/migration.ts'

const B = (s: string): Buffer => Buffer.from(s)

function put (st: Store, k: string, v: string | Buffer, at = 0): boolean {
  const kb = B(k)
  const vb = Buffer.isBuffer(v) ? v : B(v)
  const slot = st.find(kb, 0, kb.length)
  return st.write(slot, kb, 0, kb.length, vb, 0, vb.length, at)
}

function get (st: Store, k: string): string | null {
  const kb = B(k)
  if (st.find(kb, 0, kb.length) < 0) return null
  const vs = st.seg.valStart(st.off)
  return st.seg.bytes.toString('latin1', vs, vs + st.seg.valLen(st.off))
}

/** While the index grows, the new index must hold exactly the old one's entries below the cursor. */
function checkMigration (st: Store): void {
  const m = (st as unknown as { migration: IndexMigration | null }).migration
  if (m === null) return
  const behind: string[] = []
  for (let i = 0; i < m.cursor; i++) {
    const w = i << 2
    if (m.from.t[w] !== 0) behind.push(`${m.from.t[w]}/${m.from.t[w + 1]}/${m.from.t[w + 2]}`)
  }
  const copied: string[] = []
  for (let w = 0; w < m.to.t.length; w += 4) if (m.to.t[w] !== 0) copied.push(`${m.to.t[w]}/${m.to.t[w + 1]}/${m.to.t[w + 2]}`)
  assert.deepEqual(copied.sort(), behind.sort())
  assert.equal(m.to.count, copied.length)
  migrationsChecked++
}
let migrationsChecked = 0

function del (st: Store, k: string): boolean {
  const kb = B(k)
  const slot = st.find(kb, 0, kb.length)
  if (slot < 0) return false
  st.removeAt(slot)
  return true
}

test('matches a Map model under random sets, overwrites and deletes (incremental index growth, backward-shift delete, compaction)', () => {
  const st = new Store({ segmentSize: 16 * 1024, initialSlots: 8 })
  const compactor = new Compactor(st)
  const model = new Map<string, string>()
  let seed = 7
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
  for (let i = 0; i < 60000; i++) {
    const k = `k${rnd(i < 30000 ? 3000 : 6000)}`
    const op = rnd(10)
    if (i % 97 === 0) st.prepareGrowth(rnd(4))
    if (i % 13 === 0) st.growthStep(rnd(6))
    if (i % 501 === 0) compactor.step(0.05)
    if (i % 31 === 0) checkMigration(st)
    if (op < 6) {
      const v = 'v'.repeat(rnd(40)) + i
      assert.ok(put(st, k, v))
      model.set(k, v)
    } else if (op < 9) {
      assert.equal(del(st, k), model.delete(k))
    } else {
      assert.equal(get(st, k), model.get(k) ?? null)
    }
  }
  assert.equal(st.size, model.size)
  for (const [k, v] of model) assert.equal(get(st, k), v)
  assert.ok(migrationsChecked > 3, `${migrationsChecked} migrations checked`)
  while (st.growthStep(1 << 20));
  assert.equal(st.size, model.size)
  for (const [k, v] of model) assert.equal(get(st, k), v)
  let live = 0
  for (const s of st.segments) if (s !== undefined) live += s.live
  assert.equal(live, st.liveBytes)
})

test('a store adopted from exported regions and meta has every key, with no per-key work', () => {
  const st = new Store({ segmentSize: 32 * 1024 })
  for (let i = 0; i < 5000; i++) put(st, `key:${i}`, `value:${i}`, i % 2 === 0 ? Date.now() + 60_000 : 0)
  const state = JSON.parse(JSON.stringify(st.exportState().meta)) as ReturnType<Store['exportState']>['meta']
  const next = Store.adopt({ regions: st.exportState().regions, meta: state })
  assert.equal(next.size, 5000)
  assert.equal(next.expires, 2500)
  for (let i = 0; i < 5000; i++) assert.equal(get(next, `key:${i}`), `value:${i}`)
  assert.ok(put(next, 'key:new', 'x'))
  assert.equal(get(next, 'key:new'), 'x')
})

test('expired keys vanish on read and by the sweeper', () => {
  const st = new Store()
  put(st, 'a', '1', Date.now() - 1)
  put(st, 'b', '2', Date.now() + 50)
  put(st, 'c', '3')
  assert.equal(st.expires, 2)
  st.now = Date.now()
  assert.equal(get(st, 'a'), null)
  assert.equal(st.expires, 1)
  st.now = Date.now() + 100
  new ExpirySweeper(st).sweep(1 << 20)
  assert.equal(st.size, 1)
  assert.equal(st.expires, 0)
  put(st, 'c', '33', KEEP_TTL)
  assert.equal(get(st, 'c'), '33')
})

test('maxmemory refuses writes past it', () => {
  const st = new Store({ maxmemory: 200 * 1024, initialSlots: 64 })
  let ok = 0
  while (put(st, `k${ok}`, Buffer.alloc(1000))) ok++
  assert.ok(ok > 150 && ok < 200, `${ok} writes fit`)
  assert.ok(st.usedBytes <= 200 * 1024)
  assert.ok(del(st, 'k1'))
  assert.ok(put(st, 'again', Buffer.alloc(1000)))
})

test('compaction frees garbage segments and keeps every live value', () => {
  const st = new Store({ segmentSize: 16 * 1024 })
  for (let i = 0; i < 2000; i++) put(st, `k${i}`, `v${i}`.padEnd(50, '.'))
  for (let i = 0; i < 2000; i++) if (i % 4 !== 0) del(st, `k${i}`)
  for (let i = 0; i < 2000; i += 8) put(st, `k${i}`, 'longer'.repeat(20))
  const before = st.allocatedBytes
  const c = new Compactor(st)
  while (c.step(5));
  assert.ok(c.freedSegments > 0)
  assert.ok(st.allocatedBytes < before / 2, `${st.allocatedBytes} < ${before}/2`)
  for (let i = 0; i < 2000; i++) {
    const want = i % 8 === 0 ? 'longer'.repeat(20) : i % 4 === 0 ? `v${i}`.padEnd(50, '.') : null
    assert.equal(get(st, `k${i}`), want)
  }
})

test('an RDB saved to a file loads back into an empty store with every live key (the native snapshot it replaced did this)', async () => {
  const { saveRdb, loadRdb } = await import('../src/kv/rdb/store.ts')
  const { KvServer } = await import('../src/kv/server.ts')
  const { mkdtempSync, rmSync } = await import('node:fs')
  const dir = mkdtempSync('/tmp/kv-snap-')
  try {
    const st = new Store({ segmentSize: 64 * 1024 })
    for (let i = 0; i < 3000; i++) put(st, `s${i}`, `value-${i}`.repeat(i % 7 + 1), i % 3 === 0 ? Date.now() + 60_000 : 0)
    put(st, 'dead', 'x', Date.now() - 5)
    put(st, 'huge', Buffer.alloc(20 * 1024 * 1024, 66))
    const saved = saveRdb(new KvServer(st), `${dir}/db`)
    assert.equal(saved.keys, 3001)
    const next = new KvServer(new Store())
    const loaded = await loadRdb(next, `${dir}/db`)
    assert.equal(loaded.keys, 3001)
    assert.equal(next.store.expires, 1000)
    for (let i = 0; i < 3000; i++) assert.equal(get(next.store, `s${i}`), `value-${i}`.repeat(i % 7 + 1))
    assert.equal(get(next.store, 'huge')?.length, 20 * 1024 * 1024)
  } finally {
    rmSync(dir, { recursive: true })
  }
})

test('FLUSHALL in the middle of a compaction leaves the new data alone', () => {
  const st = new Store({ segmentSize: 16 * 1024 })
  for (let i = 0; i < 3000; i++) put(st, `k${i}`, 'x'.repeat(60))
  for (let i = 0; i < 3000; i++) if (i % 5 !== 0) del(st, `k${i}`)
  const c = new Compactor(st)
  c.step(0)
  st.flush()
  for (let i = 0; i < 2000; i++) put(st, `n${i}`, 'y'.repeat(60))
  while (c.step(5));
  assert.equal(st.size, 2000)
  for (let i = 0; i < 2000; i += 7) assert.equal(get(st, `n${i}`), 'y'.repeat(60))
})
