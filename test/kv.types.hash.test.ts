import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { rawExchange } from './fixtures/kv-proc.ts'
import { startPair, items, pairs, type Pair } from './fixtures/kv-types.ts'

let p: Pair
before(async () => { p = await startPair() })
after(async () => { await p.close() })

test('hashes: HSET/HMSET/HSETNX/HGET/HMGET/HDEL/HLEN/HSTRLEN/HEXISTS answer as redis-server does', async () => {
  await p.same([['FLUSHALL']])
  await p.same([
    ['HSET', 'h', 'a', '1', 'b', '22'], ['HSET', 'h', 'a', 'x', 'c', '3'], ['HSET', 'h', 'a'], ['HSET', 'h'],
    ['HMSET', 'h', 'd', '4'], ['HMSET', 'h', 'd'], ['HSETNX', 'h', 'a', 'no'], ['HSETNX', 'h', 'e', '5'],
    ['HGET', 'h', 'a'], ['HGET', 'h', 'zz'], ['HGET', 'none', 'a'], ['HMGET', 'h', 'a', 'zz', 'b'], ['HMGET', 'none', 'a'],
    ['HLEN', 'h'], ['HLEN', 'none'], ['HSTRLEN', 'h', 'b'], ['HSTRLEN', 'h', 'zz'], ['HEXISTS', 'h', 'c'], ['HEXISTS', 'h', 'zz'],
    ['HDEL', 'h', 'a', 'zz', 'b'], ['HDEL', 'none', 'a'], ['HLEN', 'h'], ['HDEL', 'h', 'c', 'd', 'e'], ['EXISTS', 'h'], ['TYPE', 'h']
  ])
})

test('hashes: HKEYS/HVALS/HGETALL, a value changing size, and a hash past 128 fields', async () => {
  await p.same([['FLUSHALL']])
  await p.same([['HSET', 'h', 'f', 'short'], ['HSET', 'h', 'f', 'x'.repeat(300)], ['HGET', 'h', 'f'], ['HSET', 'h', 'f', ''], ['HGET', 'h', 'f'], ['HSTRLEN', 'h', 'f']])
  const set: string[] = ['HSET', 'big']
  for (let i = 0; i < 1000; i++) set.push(`field:${i}`, `value:${i}`.repeat(i % 7 + 1))
  await p.same([set, ['HLEN', 'big'], items('HKEYS', 'big'), items('HVALS', 'big'), pairs('HGETALL', 'big'), ['HGET', 'big', 'field:999'], items('HKEYS', 'none')])
  const del = ['HDEL', 'big']
  for (let i = 0; i < 1000; i += 2) del.push(`field:${i}`)
  await p.same([del, ['HLEN', 'big'], pairs('HGETALL', 'big'), ['HEXISTS', 'big', 'field:2'], ['HEXISTS', 'big', 'field:3']])
})

test('hashes: HINCRBY and HINCRBYFLOAT with their errors', async () => {
  await p.same([['FLUSHALL']])
  await p.same([
    ['HINCRBY', 'h', 'n', '5'], ['HINCRBY', 'h', 'n', '-7'], ['HINCRBY', 'h', 'n', 'x'], ['HSET', 'h', 's', 'abc'], ['HINCRBY', 'h', 's', '1'],
    ['HSET', 'h', 'max', '9223372036854775807'], ['HINCRBY', 'h', 'max', '1'], ['HINCRBYFLOAT', 'h', 'f', '1.5'], ['HINCRBYFLOAT', 'h', 'f', '2.25'],
    ['HINCRBYFLOAT', 'h', 'n', '0.5'], ['HINCRBYFLOAT', 'h', 's', '1'], ['HINCRBYFLOAT', 'h', 'f', 'abc'], ['HINCRBYFLOAT', 'h', 'f', '1e3'],
    ['HGET', 'h', 'f'], ['HINCRBYFLOAT', 'h', 'f', 'inf'], ['HINCRBY', 'h', 'x'.repeat(40), '3']
  ])
})

test('hashes: HRANDFIELD counts, HSCAN covers every field once with MATCH and COUNT', async () => {
  await p.same([['FLUSHALL']])
  const set: string[] = ['HSET', 'h']
  for (let i = 0; i < 500; i++) set.push(`k${i}`, `v${i}`)
  await p.same([set, ['HRANDFIELD', 'none'], ['HRANDFIELD', 'none', '3'], ['HRANDFIELD', 'h', '0'], ['HRANDFIELD', 'h', 'x'], ['HRANDFIELD', 'h', '1', 'nope']])
  const [one, five, neg, all, withValues] = await p.ours(['HRANDFIELD', 'h'], ['HRANDFIELD', 'h', '5'], ['HRANDFIELD', 'h', '-1000'], ['HRANDFIELD', 'h', '900'], ['HRANDFIELD', 'h', '3', 'WITHVALUES']) as [string, string[], string[], string[], string[]]
  assert.match(one, /^k\d+$/)
  assert.equal(new Set(five).size, 5)
  assert.equal(neg.length, 1000)
  assert.equal(new Set(all).size, 500)
  assert.equal(withValues.length, 6)
  for (let i = 0; i < 6; i += 2) assert.equal(withValues[i + 1], `v${withValues[i].slice(1)}`)
  const seen = new Map<string, string>()
  let cursor = '0'
  let calls = 0
  do {
    const [r] = await p.ours(['HSCAN', 'h', cursor, 'MATCH', 'k1*', 'COUNT', '20']) as [[string, string[]]]
    cursor = r[0]
    for (let i = 0; i < r[1].length; i += 2) seen.set(r[1][i], r[1][i + 1])
    calls++
  } while (cursor !== '0' && calls < 1000)
  assert.equal(cursor, '0')
  assert.equal(seen.size, 111)
  for (const [k, v] of seen) assert.equal(v, `v${k.slice(1)}`)
  await p.same([['HSCAN', 'h', 'x'], ['HSCAN', 'h', '0', 'COUNT', '0'], ['HSCAN', 'none', '0'], ['HSCAN', 'h', '0', 'BAD']])
})

test('hashes: HSCAN returns every field present throughout, while fields are added and deleted between calls', async () => {
  await p.ours(['FLUSHALL'])
  const set: string[] = ['HSET', 'h']
  for (let i = 0; i < 300; i++) set.push(`keep${i}`, 'v')
  await p.ours(set)
  const seen = new Set<string>()
  let cursor = '0'
  let round = 0
  do {
    const [r] = await p.ours(['HSCAN', 'h', cursor, 'COUNT', '10']) as [[string, string[]]]
    cursor = r[0]
    for (let i = 0; i < r[1].length; i += 2) seen.add(r[1][i])
    // Growth (and later shrinking) between calls moves fields between slots.
    const churn: string[] = ['HSET', 'h']
    for (let i = 0; i < 40; i++) churn.push(`tmp${round}_${i}`, 'v')
    await p.ours(churn, ['HDEL', 'h', ...Array.from({ length: 40 }, (_, i) => `tmp${round - 1}_${i}`)])
    round++
  } while (cursor !== '0' && round < 10000)
  for (let i = 0; i < 300; i++) assert.ok(seen.has(`keep${i}`), `keep${i} missed`)
})

test('hashes: WRONGTYPE both ways, and a hash replaced by SET is freed', async () => {
  await p.same([['FLUSHALL']])
  await p.same([
    ['SET', 's', 'v'], ['HSET', 's', 'a', '1'], ['HGET', 's', 'a'], ['HGETALL', 's'], ['HLEN', 's'], ['HSET', 'h', 'a', '1'],
    ['GET', 'h'], ['INCR', 'h'], ['SET', 'h', 'now a string'], ['GET', 'h'], ['TYPE', 'h'], ['HSET', 'h2', 'a', '1'], ['TYPE', 'h2']
  ])
})

test('hashes: HRANDFIELD count ranges are Redis 7.2\'s, and RESP3 WITHVALUES pairs each field with its value', async () => {
  await p.same([['FLUSHALL'], ['HSET', 'h', 'a', '1']])
  assert.deepEqual(await p.ours(['HRANDFIELD', 'h', '-9223372036854770000', 'WITHVALUES'], ['HRANDFIELD', 'h', '-9223372036854775808', 'WITHVALUES'],
    ['HRANDFIELD', 'h', '-9223372036854775808'], ['HRANDFIELD', 'h', '-2', 'WITHVALUES']), [
    'ERR:ERR value is out of range', 'ERR:ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807',
    'ERR:ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807', ['a', '1', 'a', '1']])
  const r = await rawExchange(p.kvProc.port, async (s) => { s.write('HELLO 3\r\nHRANDFIELD h 1 WITHVALUES\r\n') }, 500)
  assert.ok(r.text.endsWith('*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n'), JSON.stringify(r.text.slice(-40)))
})
