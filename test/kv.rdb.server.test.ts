/**
 * RDB end to end with real processes: pagegift-kv's SAVE (and its shutdown save) loaded by
 * redis-server, and redis-server's dump loaded by `pagegift-kv --load`, every key, type, value and
 * TTL compared through the protocol; a bad dump stops pagegift-kv's start with its reason.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { KvClient } from '../src/kv/client.ts'
import { startKv, runTool, KV_BIN } from './fixtures/kv-proc.ts'
import { canonical, dataset, fill, readAll, startRedisIn } from './fixtures/rdb-data.ts'

test('pagegift-kv SAVEs every type, TTL and database to --rdb-out, and redis-server loads it all', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-rdb-srv-'))
  const data = dataset()
  const kv = await startKv(['--port', '0', '--rdb-out', join(dir, 'dump.rdb')])
  try {
    const c = await KvClient.connect(kv.port)
    await fill(c, data)
    assert.deepEqual(canonical(await readAll(c)), canonical(data), 'pagegift-kv does not hold the dataset it was given')
    assert.equal(String(await c.call('SAVE')), 'OK')
    await c.close()
  } finally {
    await kv.stop()
  }
  const redis = await startRedisIn(dir)
  try {
    assert.match(redis.output(), /DB loaded from disk/)
    const c = await KvClient.connect(redis.port)
    assert.deepEqual(canonical(await readAll(c)), canonical(data))
    await c.close()
  } finally {
    await redis.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('redis-server\'s dump of every type, TTL and database loads into pagegift-kv --load, key for key', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-rdb-srv-'))
  const data = dataset()
  const redis = await startRedisIn(dir)
  try {
    const c = await KvClient.connect(redis.port)
    await fill(c, data)
    await c.call('SET', 'gone', 'x', 'PX', 1)
    await new Promise((resolve) => setTimeout(resolve, 20))
    await c.call('SAVE')
    await c.close()
  } finally {
    await redis.stop()
  }
  const kv = await startKv(['--port', '0', '--load', join(dir, 'dump.rdb'), '--rdb-out', join(dir, 'out.rdb')])
  try {
    assert.match(kv.output(), new RegExp(`loaded ${data.length} keys .*checksum verified`))
    const c = await KvClient.connect(kv.port)
    assert.deepEqual(canonical(await readAll(c)), canonical(data))
    await c.call('SELECT', 1)
    assert.equal(String(await c.call('TYPE', 'd1:zset:big')), 'zset')
    await c.call('SET', 'written-after-load', 'yes')
    await c.close()
  } finally {
    await kv.stop()
  }
  // SIGTERM wrote --rdb-out: the loaded data plus the new key, which redis-server reads back.
  assert.ok(existsSync(join(dir, 'out.rdb')), 'no RDB written at shutdown')
  copyFileSync(join(dir, 'out.rdb'), join(dir, 'dump.rdb'))
  const again = await startRedisIn(dir)
  try {
    const c = await KvClient.connect(again.port)
    assert.equal(String(await c.call('SELECT', 1)), 'OK')
    assert.equal(String(await c.call('GET', 'written-after-load')), 'yes')
    await c.call('SELECT', 0)
    const back = (await readAll(c)).filter((k) => k.key.toString() !== 'written-after-load')
    assert.deepEqual(canonical(back), canonical(data))
    await c.close()
  } finally {
    await again.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a corrupt, truncated or missing dump stops pagegift-kv --load with its reason and code, serving nothing', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-rdb-srv-'))
  const redis = await startRedisIn(dir)
  try {
    const c = await KvClient.connect(redis.port)
    await fill(c, dataset(new Set(['string', 'hash'])))
    await c.call('SAVE')
    await c.close()
  } finally {
    await redis.stop()
  }
  try {
    const good = readFileSync(join(dir, 'dump.rdb'))
    const flipped = Buffer.from(good)
    flipped[Math.floor(good.length / 2)] ^= 0x40
    const cases: Array<[string, Buffer | null, RegExp]> = [
      ['truncated', good.subarray(0, good.length - 100), /ERR_RDB_TRUNCATED/],
      ['flipped', flipped, /ERR_RDB_(CHECKSUM|CORRUPT|BAD_TYPE|TRUNCATED)/],
      ['missing', null, /ENOENT/]
    ]
    for (const [name, bytes, want] of cases) {
      const path = join(dir, `${name}.rdb`)
      if (bytes !== null) writeFileSync(path, bytes)
      const r = await Promise.race([
        runTool(process.execPath, [KV_BIN, '--port', '0', '--load', path]),
        new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`${name}: pagegift-kv did not exit`)), 30_000))
      ])
      assert.equal(r.code, 1, `${name}: ${r.stdout}${r.stderr}`)
      assert.match(r.stderr, /pagegift-kv: cannot load/)
      assert.match(r.stderr, want)
      assert.doesNotMatch(r.stdout, /serving on/)
    }
    // More databases in the file than the store has.
    const many = await runTool(process.execPath, [KV_BIN, '--port', '0', '--databases', '4', '--load', join(dir, 'dump.rdb')])
    assert.equal(many.code, 1)
    assert.match(many.stderr, /ERR_RDB_DB_RANGE/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
