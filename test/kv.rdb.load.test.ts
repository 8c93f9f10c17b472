/** loadRdb and saveRdb in process: yields while loading, duplicate keys, expired keys, maxmemory, no fd left open. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { Store } from '../src/kv/store.ts'
import { KvServer } from '../src/kv/server.ts'
import { loadRdb, saveRdb } from '../src/kv/rdb/store.ts'
import type { RdbKey } from '../src/kv/rdb/format.ts'
import { canonical, dataset, writeRdb } from './fixtures/rdb-data.ts'

const str = (db: number, key: string, value: string | Buffer, expireAt = 0): RdbKey => ({ db, key: Buffer.from(key), value: { type: 'string', value: Buffer.from(value) }, expireAt })

function withDir (f: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kv-rdb-load-'))
    try { await f(dir) } finally { rmSync(dir, { recursive: true, force: true }) }
  }
}

test('a big load yields to the event loop: a 5 ms timer keeps ticking', withDir(async (dir) => {
  const keys = Array.from({ length: 80_000 }, (_, i) => str(i % 3, `k${i}`, `value-${i}`.padEnd(60, '.')))
  writeFileSync(join(dir, 'big.rdb'), writeRdb(keys))
  let ticks = 0
  let last = performance.now()
  let maxGap = 0
  const timer = setInterval(() => { const now = performance.now(); maxGap = Math.max(maxGap, now - last); last = now; ticks++ }, 5)
  const t0 = performance.now()
  const r = await loadRdb(new KvServer(new Store()), join(dir, 'big.rdb'))
  const took = performance.now() - t0
  clearInterval(timer)
  assert.equal(r.keys, 80_000)
  assert.ok(ticks >= 5, `${ticks} ticks in ${took.toFixed(0)} ms`)
  assert.ok(maxGap < Math.max(250, took / 4), `longest stall ${maxGap.toFixed(0)} ms of ${took.toFixed(0)} ms`)
}))

test('duplicate keys, maxmemory and expired keys: coded errors or counted skips, and the file is closed every time', withDir(async (dir) => {
  const fds = readdirSync('/proc/self/fd').length
  writeFileSync(join(dir, 'dup.rdb'), writeRdb([str(0, 'a', '1'), str(1, 'a', '2'), str(1, 'a', '3')]))
  await assert.rejects(loadRdb(new KvServer(new Store()), join(dir, 'dup.rdb')), { code: 'ERR_RDB_DUPLICATE_KEY', message: /'a' appears twice in database 1/ })
  writeFileSync(join(dir, 'big.rdb'), writeRdb(Array.from({ length: 500 }, (_, i) => str(0, `k${i}`, Buffer.alloc(1000, 65)))))
  await assert.rejects(loadRdb(new KvServer(new Store({ maxmemory: 200_000 })), join(dir, 'big.rdb')), { code: 'ERR_RDB_OOM' })
  writeFileSync(join(dir, 'old.rdb'), writeRdb([str(0, 'gone', 'x', Date.now() - 1000), str(0, 'kept', 'y', Date.now() + 60_000)]))
  const server = new KvServer(new Store())
  const r = await loadRdb(server, join(dir, 'old.rdb'))
  assert.deepEqual([r.keys, r.expiredSkipped, r.checksum], [1, 1, 'verified'])
  assert.equal(server.store.size, 1)
  assert.equal(readdirSync('/proc/self/fd').length, fds)
}))

test('every type and database round-trips through saveRdb and loadRdb in process', withDir(async (dir) => {
  const data = dataset()
  writeFileSync(join(dir, 'in.rdb'), writeRdb(data))
  const a = new KvServer(new Store())
  assert.equal((await loadRdb(a, join(dir, 'in.rdb'))).keys, data.length)
  const saved = saveRdb(a, join(dir, 'out.rdb'))
  assert.equal(saved.keys, data.length)
  const { RdbReader } = await import('../src/kv/rdb/reader.ts')
  const { fileSource } = await import('../src/kv/rdb/input.ts')
  const reader = new RdbReader(fileSource(join(dir, 'out.rdb')))
  const back: RdbKey[] = []
  await reader.forEach((k) => back.push(k))
  assert.deepEqual(canonical(back), canonical(data))
}))
