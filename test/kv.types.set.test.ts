import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startPair, items, type Pair } from './fixtures/kv-types.ts'

let p: Pair
before(async () => { p = await startPair() })
after(async () => { await p.close() })

test('sets: SADD/SREM/SMEMBERS/SISMEMBER/SMISMEMBER/SCARD/SMOVE answer as redis-server does', async () => {
  await p.same([['FLUSHALL']])
  await p.same([
    ['SADD', 's', 'a', 'b', 'c', 'a'], ['SADD', 's', 'd'], items('SMEMBERS', 's'), items('SMEMBERS', 'none'), ['SISMEMBER', 's', 'a'], ['SISMEMBER', 's', 'z'],
    ['SISMEMBER', 'none', 'a'], ['SMISMEMBER', 's', 'a', 'z', 'd'], ['SMISMEMBER', 'none', 'a'], ['SCARD', 's'], ['SCARD', 'none'], ['SREM', 's', 'a', 'z'], ['SREM', 'none', 'a'],
    ['SMOVE', 's', 't', 'b'], ['SMOVE', 's', 't', 'zz'], ['SMOVE', 'none', 't', 'b'], ['SMOVE', 's', 's', 'c'], items('SMEMBERS', 's'), items('SMEMBERS', 't'),
    ['SMOVE', 's', 't', 'c'], ['SMOVE', 's', 't', 'd'], ['EXISTS', 's'], ['SET', 'str', 'x'], ['SMOVE', 't', 'str', 'b'], ['SMOVE', 'str', 't', 'b'], ['SADD', 'str', 'a'],
    ['SREM', 't', 'b', 'c', 'd'], ['EXISTS', 't'], ['TYPE', 'str']
  ])
})

test('sets: SINTER/SUNION/SDIFF, their STORE forms and SINTERCARD, over small and big sets', async () => {
  await p.same([['FLUSHALL']])
  const a: string[] = ['SADD', 'a']
  const b: string[] = ['SADD', 'b']
  for (let i = 0; i < 2000; i++) { if (i % 2 === 0) a.push(`m${i}`); if (i % 3 === 0) b.push(`m${i}`) }
  await p.same([a, b, ['SADD', 'c', 'm0', 'm6', 'm7', 'x'], ['SET', 'str', 'v']])
  await p.same([
    items('SINTER', 'a', 'b'), items('SINTER', 'a', 'b', 'c'), items('SINTER', 'a', 'none'), items('SINTER', 'a', 'a'), items('SUNION', 'c', 'none', 'b'),
    items('SDIFF', 'a', 'b'), items('SDIFF', 'c', 'a', 'b'), items('SDIFF', 'a', 'a'), items('SDIFF', 'none', 'a'), ['SINTER', 'a', 'str'], ['SUNION', 'str'],
    ['SINTERSTORE', 'd', 'a', 'b'], items('SMEMBERS', 'd'), ['SUNIONSTORE', 'd', 'd', 'c'], ['SCARD', 'd'], ['SDIFFSTORE', 'd', 'd', 'a'], items('SMEMBERS', 'd'),
    ['SINTERSTORE', 'str', 'a', 'b'], ['TYPE', 'str'], ['SINTERSTORE', 'd', 'a', 'none'], ['EXISTS', 'd'], ['SUNIONSTORE', 'e', 'a', 'str'],
    ['SINTERCARD', '2', 'a', 'b'], ['SINTERCARD', '2', 'a', 'b', 'LIMIT', '10'], ['SINTERCARD', '2', 'a', 'b', 'LIMIT', '0'], ['SINTERCARD', '0', 'a'],
    ['SINTERCARD', '3', 'a', 'b'], ['SINTERCARD', '1', 'a', 'LIMIT', '-1'], ['SINTERCARD', '1', 'a', 'BAD', '1'], ['SINTERCARD', 'x', 'a']
  ])
})

test('sets: SPOP and SRANDMEMBER keep their counts and remove what they pop', async () => {
  await p.same([['FLUSHALL']])
  const add: string[] = ['SADD', 's']
  for (let i = 0; i < 300; i++) add.push(`m${i}`)
  await p.same([add, ['SPOP', 'none'], ['SPOP', 'none', '3'], ['SPOP', 's', '-1'], ['SPOP', 's', '1', '2'], ['SRANDMEMBER', 'none'], ['SRANDMEMBER', 'none', '5'], ['SRANDMEMBER', 's', '0'], ['SRANDMEMBER', 's', 'x']])
  const [one, some, all, dup] = await p.ours(['SRANDMEMBER', 's'], ['SRANDMEMBER', 's', '10'], ['SRANDMEMBER', 's', '1000'], ['SRANDMEMBER', 's', '-500']) as [string, string[], string[], string[]]
  assert.match(one, /^m\d+$/)
  assert.equal(new Set(some).size, 10)
  assert.equal(new Set(all).size, 300)
  assert.equal(dup.length, 500)
  const popped = new Set<string>()
  const [p1, p2] = await p.ours(['SPOP', 's'], ['SPOP', 's', '99']) as [string, string[]]
  popped.add(p1)
  for (const m of p2) popped.add(m)
  assert.equal(popped.size, 100)
  const [card, left] = await p.ours(['SCARD', 's'], ['SMEMBERS', 's']) as [number, string[]]
  assert.equal(card, 200)
  for (const m of left) assert.ok(!popped.has(m))
  const [rest] = await p.ours(['SPOP', 's', '1000']) as [string[]]
  assert.equal(rest.length, 200)
  assert.deepEqual(await p.ours(['EXISTS', 's']), [0])
})

test('sets: SSCAN covers every member, with MATCH, on a small and a big set', async () => {
  await p.same([['FLUSHALL']])
  const add: string[] = ['SADD', 'big']
  for (let i = 0; i < 5000; i++) add.push(`member:${i}`)
  await p.same([add, ['SADD', 'small', 'a', 'b', 'c'], ['SSCAN', 'none', '0'], ['SSCAN', 'big', 'x'], ['SSCAN', 'big', '0', 'COUNT', '0'], ['SSCAN', 'big', '0', 'MATCH']])
  for (const [key, match, want] of [['big', 'member:12*', 111], ['small', '*', 3]] as const) {
    const seen = new Set<string>()
    let cursor = '0'
    let calls = 0
    do {
      const [r] = await p.ours(['SSCAN', key, cursor, 'MATCH', match, 'COUNT', '50']) as [[string, string[]]]
      cursor = r[0]
      for (const m of r[1]) seen.add(m)
    } while (cursor !== '0' && ++calls < 10000)
    assert.equal(seen.size, want)
  }
})
