/**
 * The RDB codec against the real redis-server 7.0: Redis writes a file with every type (compact and
 * large encodings, TTLs, several databases) and our reader gets every key back; our writer writes the
 * same data and Redis loads it with every key, type, value and TTL intact.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { KvClient } from '../src/kv/client.ts'
import { RdbReader } from '../src/kv/rdb/reader.ts'
import { bufferSource, fileSource } from '../src/kv/rdb/input.ts'
import type { RdbKey } from '../src/kv/rdb/format.ts'
import { canonical, dataset, fill, readAll, startRedisIn, writeRdb } from './fixtures/rdb-data.ts'

function readFile (path: string): { keys: RdbKey[], reader: RdbReader } {
  const reader = new RdbReader(fileSource(path))
  const keys: RdbKey[] = []
  try {
    for (let k = reader.next(); k !== null; k = reader.next()) keys.push(k)
  } finally {
    reader.close()
  }
  return { keys, reader }
}

test('redis-server writes every type, TTL and database; the reader gets each key back exactly', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-rdb-'))
  const redis = await startRedisIn(dir)
  try {
    const c = await KvClient.connect(redis.port)
    const data = dataset()
    await fill(c, data)
    assert.equal(String(await c.call('SAVE')), 'OK')
    await c.close()
    const { keys, reader } = readFile(join(dir, 'dump.rdb'))
    assert.equal(reader.version, 10)
    assert.equal(reader.checksum, 'verified')
    assert.match(reader.aux.get('redis-ver') ?? '', /^7\./)
    assert.deepEqual(canonical(keys), canonical(data))
    assert.deepEqual(reader.sizes.get(15), { keys: data.filter((k) => k.db === 15).length, expires: 5 })
  } finally {
    await redis.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

for (const compress of [true, false]) {
  test(`redis-server loads what the writer wrote (compress ${String(compress)}): every key, type, value and TTL`, { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kv-rdb-'))
    const data = dataset()
    writeFileSync(join(dir, 'dump.rdb'), writeRdb(data, compress))
    const redis = await startRedisIn(dir)
    try {
      assert.match(redis.output(), /DB loaded from disk/)
      const c = await KvClient.connect(redis.port)
      const back = await readAll(c)
      assert.deepEqual(canonical(back), canonical(data))
      // Redis chose the compact encodings for the small values, as for its own writes.
      assert.equal(String(await c.call('OBJECT', 'ENCODING', 'd0:list:small')), 'quicklist')
      assert.equal(String(await c.call('OBJECT', 'ENCODING', 'd0:set:int')), 'intset')
      assert.equal(String(await c.call('OBJECT', 'ENCODING', 'd0:zset:small')), 'listpack')
      assert.equal(String(await c.call('OBJECT', 'ENCODING', 'd0:hash:small')), 'listpack')
      assert.equal(String(await c.call('OBJECT', 'ENCODING', 'd0:hash:big')), 'hashtable')
      await c.call('SAVE')
      await c.close()
    } finally {
      await redis.stop()
    }
    // Redis's own save of what it loaded reads back the same again.
    const again = new RdbReader(bufferSource(readFileSync(join(dir, 'dump.rdb'))))
    const keys: RdbKey[] = []
    for (let k = again.next(); k !== null; k = again.next()) keys.push(k)
    assert.deepEqual(canonical(keys), canonical(data))
    rmSync(dir, { recursive: true, force: true })
  })
}
