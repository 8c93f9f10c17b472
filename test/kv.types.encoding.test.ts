import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startPair, type Pair } from './fixtures/kv-types.ts'

let p: Pair
before(async () => { p = await startPair() })
after(async () => { await p.close() })

const many = (cmd: string[], n: number, f: (i: number) => string[]): string[] => { for (let i = 0; i < n; i++) cmd.push(...f(i)); return cmd }

test('OBJECT ENCODING of hashes and zsets answers as redis-server does, by size and by CONFIG thresholds', async () => {
  // Both servers get Redis's defaults (the fixture starts redis-server with bigger thresholds).
  await p.same([['FLUSHALL'], ['CONFIG', 'SET', 'hash-max-listpack-entries', '128', 'zset-max-listpack-entries', '128', 'hash-max-listpack-value', '64', 'zset-max-listpack-value', '64']])
  await p.same([
    ['HSET', 'h', 'a', '1'], ['OBJECT', 'ENCODING', 'h'], many(['HSET', 'h'], 128, (i) => [`f${i}`, 'v']), ['OBJECT', 'ENCODING', 'h'],
    ['HSET', 'h2', 'a', 'x'.repeat(64)], ['OBJECT', 'ENCODING', 'h2'], ['HSET', 'h3', 'a', 'x'.repeat(65)], ['OBJECT', 'ENCODING', 'h3'],
    ['HSET', 'h4', 'y'.repeat(65), '1'], ['OBJECT', 'ENCODING', 'h4'],
    ['ZADD', 'z', '1', 'a'], ['OBJECT', 'ENCODING', 'z'], many(['ZADD', 'z'], 128, (i) => [String(i), `m${i}`]), ['OBJECT', 'ENCODING', 'z'],
    ['ZADD', 'z2', '1', 'x'.repeat(65)], ['OBJECT', 'ENCODING', 'z2'],
    ['CONFIG', 'SET', 'hash-max-ziplist-entries', '2'], ['HSET', 'h5', 'a', '1', 'b', '2'], ['OBJECT', 'ENCODING', 'h5'],
    ['HSET', 'h6', 'a', '1', 'b', '2', 'c', '3'], ['OBJECT', 'ENCODING', 'h6'], ['CONFIG', 'SET', 'hash-max-listpack-entries', '128'],
    ['CONFIG', 'SET', 'zset-max-listpack-value', '4'], ['ZADD', 'z3', '1', 'abcde'], ['OBJECT', 'ENCODING', 'z3'], ['CONFIG', 'SET', 'zset-max-listpack-value', '64']
  ])
})

test('OBJECT ENCODING of sets and lists follows Redis 7.2 (intset, listpack, hashtable; listpack, quicklist)', async () => {
  await p.same([['FLUSHALL']])
  const enc = async (...cmds: string[][]): Promise<unknown> => (await p.ours(...cmds, ['OBJECT', 'ENCODING', 'k']) as unknown[]).at(-1)
  assert.equal(await enc(['SADD', 'k', '1', '-2', '9223372036854775807']), 'intset')
  assert.equal(await enc(['SADD', 'k', '9223372036854775808']), 'listpack')
  assert.equal(await enc(['DEL', 'k'], ['SADD', 'k', '01']), 'listpack')
  assert.equal(await enc(['DEL', 'k'], many(['SADD', 'k'], 512, (i) => [String(i)])), 'intset')
  assert.equal(await enc(['SADD', 'k', '513']), 'hashtable')
  assert.equal(await enc(['DEL', 'k'], many(['SADD', 'k'], 128, (i) => [`m${i}`])), 'listpack')
  assert.equal(await enc(['SADD', 'k', 'one-more']), 'hashtable')
  assert.equal(await enc(['DEL', 'k'], ['SADD', 'k', 'x'.repeat(65)]), 'hashtable')
  assert.equal(await enc(['DEL', 'k'], ['CONFIG', 'SET', 'set-max-intset-entries', '1'], ['SADD', 'k', '1', '2']), 'listpack')
  assert.equal(await enc(['CONFIG', 'SET', 'set-max-intset-entries', '512']), 'intset')
  assert.equal(await enc(['DEL', 'k'], ['RPUSH', 'k', 'a', '1', 'b']), 'listpack')
  assert.equal(await enc(['RPUSH', 'k', 'x'.repeat(9000)]), 'quicklist')
  assert.equal(await enc(['DEL', 'k'], many(['RPUSH', 'k'], 1000, () => ['abcdefgh'])), 'quicklist')
  assert.equal(await enc(['DEL', 'k'], many(['RPUSH', 'k'], 500, () => ['abcdefgh'])), 'listpack')
  assert.equal(await enc(['CONFIG', 'SET', 'list-max-listpack-size', '4']), 'quicklist')
  assert.equal(await enc(['CONFIG', 'SET', 'list-max-ziplist-size', '-2']), 'listpack')
})
