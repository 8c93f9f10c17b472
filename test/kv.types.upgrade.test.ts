import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startKv, withUpgradableKv } from './fixtures/kv-proc.ts'
import { KvClient, type Arg } from '../src/kv/client.ts'
import { norm } from './fixtures/kv-types.ts'

/** Writes hashes, lists, sets and sorted sets, small and past 128 elements, into database `db`. */
function workload (db: number): Arg[][] {
  const cmds: Arg[][] = [['SELECT', db]]
  for (const n of [5, 1000]) {
    const h: Arg[] = ['HSET', `h${n}`]
    const l: Arg[] = ['RPUSH', `l${n}`]
    const s: Arg[] = ['SADD', `s${n}`]
    const z: Arg[] = ['ZADD', `z${n}`]
    for (let i = 0; i < n; i++) {
      h.push(`f${i}`, `db${db}:v${i}`)
      l.push(`db${db}:e${i}`)
      s.push(`db${db}:m${i}`)
      z.push(String(i % 13), `db${db}:m${i}`)
    }
    cmds.push(h, l, s, z)
  }
  cmds.push(['EXPIRE', 'h1000', 1000], ['SET', 'str', `db${db}`])
  return cmds
}

/** Every key's type and full contents in `db`, sorted where Redis leaves the order open. */
async function dump (c: KvClient, db: number): Promise<unknown> {
  await c.call('SELECT', db)
  const keys = (norm(await c.call('KEYS', '*')) as string[]).sort()
  const out: Record<string, unknown> = {}
  for (const k of keys) {
    const type = String(await c.call('TYPE', k))
    const read: Record<string, Arg[]> = { hash: ['HGETALL', k], list: ['LRANGE', k, 0, -1], set: ['SMEMBERS', k], zset: ['ZRANGE', k, 0, -1, 'WITHSCORES'], string: ['GET', k] }
    let v = norm(await c.call(...read[type]))
    if (type === 'set') v = (v as string[]).sort()
    if (type === 'hash') {
      const a = v as string[]
      const pairs: string[] = []
      for (let i = 0; i < a.length; i += 2) pairs.push(`${a[i]}=${a[i + 1]}`)
      v = pairs.sort()
    }
    out[k] = { type, v }
  }
  return out
}

test('every type\'s contents survive live upgrades in two databases, and the heap is usable after', async () => {
  await withUpgradableKv('kv-types-up-', ['--segment-size', '1mb'], async (kv) => {
    const c = await KvClient.connect(kv.port)
    await c.pipeline([...workload(0), ...workload(7)])
    // Frees some blocks before the upgrade, so the successor inherits non-empty free lists.
    await c.pipeline([['SELECT', 7], ['LPOP', 'l1000', 300], ['SREM', 's1000', 'db7:m1', 'db7:m2'], ['HDEL', 'h1000', 'f0'], ['ZPOPMIN', 'z1000', 5], ['SELECT', 0]])
    const before = [await dump(c, 0), await dump(c, 7)]
    for (let i = 0; i < 2; i++) {
      await kv.upgrade()
      const after = [await dump(c, 0), await dump(c, 7)]
      assert.deepEqual(after, before, `contents after upgrade ${i + 1}`)
    }
    // The TTL set before the upgrades is still counting down (a loaded machine can take a while over them).
    const ttl = Number(await c.call('TTL', 'h1000'))
    assert.ok(ttl > 600 && ttl <= 1000, `TTL ${ttl}`)
    // The adopted heap takes new blocks (from its free lists and arenas) without corrupting old ones.
    await c.call('SELECT', 7)
    const grow: Arg[][] = []
    for (let i = 0; i < 2000; i++) grow.push(['HSET', 'h1000', `new${i}`, 'x'.repeat(i % 50)], ['RPUSH', 'l5', `n${i}`], ['SADD', 'snew', `m${i}`], ['ZADD', 'z5', i, `n${i}`])
    await c.pipeline(grow)
    assert.deepEqual(norm(await c.call('HLEN', 'h1000')), 2999)
    assert.deepEqual(norm(await c.call('LLEN', 'l5')), 2005)
    assert.deepEqual(norm(await c.call('LINDEX', 'l1000', 0)), 'db7:e300')
    assert.deepEqual(norm(await c.call('ZSCORE', 'z1000', 'db7:m999')), String(999 % 13))
    assert.deepEqual(norm(await c.call('SISMEMBER', 's1000', 'db7:m500')), 1)
    assert.deepEqual(await dump(c, 0), before[0])
    assert.equal(String(await c.call('FLUSHALL')), 'OK')
    assert.deepEqual(norm(await c.call('DBSIZE')), 0)
    await c.close()
  })
})

test('COPY, MOVE and RENAME of each type copy its contents, and the source stays intact', async () => {
  const kv = await startKv(['--port', '0'])
  try {
    const c = await KvClient.connect(kv.port)
    await c.pipeline(workload(0))
    const before = await dump(c, 0) as Record<string, unknown>
    await c.pipeline([['SELECT', 0], ['COPY', 'h1000', 'hc'], ['COPY', 'l1000', 'lc'], ['COPY', 's1000', 'sc'], ['COPY', 'z1000', 'zc', 'DB', 3],
      ['RENAME', 's5', 'sr'], ['MOVE', 'l5', 2], ['DEL', 'h1000'], ['HSET', 'h1000', 'other', '1']])
    const now = await dump(c, 0) as Record<string, unknown>
    assert.deepEqual(now.hc, before.h1000)
    assert.deepEqual(now.lc, before.l1000)
    assert.deepEqual(now.sc, before.s1000)
    assert.deepEqual(now.sr, before.s5)
    assert.deepEqual(now.z1000, before.z1000)
    assert.equal(now.l5, undefined)
    const db3 = await dump(c, 3) as Record<string, unknown>
    assert.deepEqual(db3.zc, before.z1000)
    const db2 = await dump(c, 2) as Record<string, unknown>
    assert.deepEqual(db2.l5, before.l5)
    await c.close()
  } finally {
    await kv.stop()
  }
})
