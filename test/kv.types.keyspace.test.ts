import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startKv, type KvProc } from './fixtures/kv-proc.ts'
import { KvClient, type Arg } from '../src/kv/client.ts'
import { norm } from './fixtures/kv-types.ts'

let kv: KvProc
let c: KvClient
before(async () => { kv = await startKv(['--port', '0']); c = await KvClient.connect(kv.port) })
after(async () => { await c.close(); await kv.stop() })

const used = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(String(await c.call('INFO', 'memory')))?.[1])

/** One collection of each type with `n` elements under `prefix`. */
function collections (prefix: string, n: number): Arg[][] {
  const h: Arg[] = ['HSET', `${prefix}h`]
  const l: Arg[] = ['RPUSH', `${prefix}l`]
  const s: Arg[] = ['SADD', `${prefix}s`]
  const z: Arg[] = ['ZADD', `${prefix}z`]
  for (let i = 0; i < n; i++) { h.push(`f${i}`, 'v'.repeat(40)); l.push('e'.repeat(40)); s.push(`m${i}`); z.push(i, `m${i}`) }
  return [h, l, s, z]
}

test('DEL, expiry, overwrite and FLUSHDB give a collection\'s heap blocks back (used_memory returns to where it was)', async () => {
  await c.call('FLUSHALL')
  const base = await used()
  for (const n of [50, 5000]) {
    await c.pipeline(collections('a', n))
    assert.ok(await used() > base + n * 40, 'the collections count in used_memory')
    assert.deepEqual(norm(await c.call('DEL', 'ah', 'al', 'as', 'az')), 4)
    assert.equal(await used(), base, `DEL of ${n}-element collections`)
    await c.pipeline([...collections('b', n), ['PEXPIRE', 'bh', 30], ['PEXPIRE', 'bl', 30], ['PEXPIRE', 'bs', 30], ['PEXPIRE', 'bz', 30]])
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.deepEqual(norm(await c.call('EXISTS', 'bh', 'bl', 'bs', 'bz')), 0)
    assert.equal(await used(), base, `expiry of ${n}-element collections`)
    await c.pipeline([...collections('c', n), ['SET', 'ch', 'x'], ['SET', 'cl', 'x'], ['SET', 'cs', 'x'], ['SET', 'cz', 'x'], ['DEL', 'ch', 'cl', 'cs', 'cz']])
    assert.equal(await used(), base, `SET over ${n}-element collections`)
  }
  await c.pipeline(collections('d', 3000))
  await c.call('FLUSHDB')
  assert.equal(await used(), base, 'FLUSHDB')
})

test('emptied collections are deleted; TYPE, EXISTS, RENAME, EXPIRE and SCAN see collections as keys', async () => {
  await c.call('FLUSHALL')
  await c.pipeline(collections('k', 10))
  const r = await c.pipeline([
    ['TYPE', 'kh'], ['TYPE', 'kl'], ['TYPE', 'ks'], ['TYPE', 'kz'], ['RENAME', 'kh', 'kh2'], ['HGET', 'kh2', 'f3'], ['EXISTS', 'kh'],
    ['EXPIRE', 'kl', 100], ['TTL', 'kl'], ['LPOP', 'kl', 10], ['EXISTS', 'kl'], ['SPOP', 'ks', 10], ['TYPE', 'ks'], ['ZREMRANGEBYRANK', 'kz', 0, -1], ['DBSIZE']
  ])
  assert.deepEqual(r.slice(0, 7).map(norm), ['hash', 'list', 'set', 'zset', 'OK', 'v'.repeat(40), 0])
  assert.deepEqual(r.slice(7, 9).map(norm), [1, 100])
  assert.equal((norm(r[9]) as string[]).length, 10)
  assert.equal((norm(r[11]) as string[]).length, 10)
  assert.deepEqual([r[10], r[12], r[13], r[14]].map(norm), [0, 'none', 10, 1])
  const [scan] = await c.pipeline([['SCAN', 0, 'COUNT', 100]])
  assert.deepEqual(norm(scan), ['0', ['kh2']])
})
