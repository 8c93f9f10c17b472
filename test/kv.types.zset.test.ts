import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startPair, pairs, norm, type Pair, type Step } from './fixtures/kv-types.ts'

let p: Pair
before(async () => { p = await startPair() })
after(async () => { await p.close() })

/** Fills `key` with `n` members (scores repeat, so ties order by member) on both servers. */
async function fill (key: string, n: number): Promise<void> {
  const add: string[] = ['ZADD', key]
  for (let i = 0; i < n; i++) add.push(String((i * 7919) % 101 - 50), `m${i}`)
  await p.same([add])
}

test('sorted sets: ZADD with NX XX GT LT CH INCR, ZINCRBY, ZSCORE, ZMSCORE, ZCARD, ZREM as redis-server does', async () => {
  await p.same([['FLUSHALL']])
  await p.same([
    ['ZADD', 'z', '1', 'a', '2', 'b', '3', 'c'], ['ZADD', 'z', 'NX', '5', 'a', '4', 'd'], ['ZADD', 'z', 'XX', '10', 'a', '4', 'e'], ['ZADD', 'z', 'CH', '11', 'a', '1', 'f', '2', 'b'],
    ['ZADD', 'z', 'GT', 'CH', '5', 'a', '20', 'b'], ['ZADD', 'z', 'LT', 'CH', '5', 'a', '30', 'b'], ['ZADD', 'z', 'INCR', '2.5', 'c'], ['ZADD', 'z', 'NX', 'INCR', '1', 'c'],
    ['ZADD', 'z', 'XX', 'INCR', '1', 'new'], ['ZADD', 'z', 'GT', 'INCR', '-1', 'c'], ['ZADD', 'z', 'NX', 'XX', '1', 'a'], ['ZADD', 'z', 'GT', 'LT', '1', 'a'], ['ZADD', 'z', 'NX', 'GT', '1', 'a'],
    ['ZADD', 'z', 'INCR', '1', 'a', '2', 'b'], ['ZADD', 'z', '1'], ['ZADD', 'z', 'x', 'a'], ['ZADD', 'z', 'nan', 'a'], ['ZADD', 'z', '1', 'a', '2'], ['ZADD', 'none', 'XX', '1', 'a'], ['EXISTS', 'none'],
    ['ZADD', 'z', '+inf', 'inf', '-inf', 'ninf'], ['ZINCRBY', 'z', '-inf', 'inf'], ['ZINCRBY', 'z', '1.5', 'g'], ['ZINCRBY', 'z', 'x', 'g'],
    ['ZSCORE', 'z', 'a'], ['ZSCORE', 'z', 'inf'], ['ZSCORE', 'z', 'zz'], ['ZSCORE', 'none', 'a'], ['ZMSCORE', 'z', 'a', 'zz', 'c'], ['ZMSCORE', 'none', 'a'], ['ZCARD', 'z'], ['ZCARD', 'none'],
    ['ZRANGE', 'z', '0', '-1', 'WITHSCORES'], ['ZREM', 'z', 'a', 'zz', 'b'], ['ZREM', 'none', 'a'], ['ZCARD', 'z'], ['SET', 's', 'x'], ['ZADD', 's', '1', 'a'], ['ZSCORE', 's', 'a']
  ])
})

test('sorted sets: ZRANGE by rank, score and lex, REV and LIMIT, and the older range commands', async () => {
  await p.same([['FLUSHALL']])
  await fill('z', 300)
  await p.same([['ZADD', 'lex', '0', 'a', '0', 'b', '0', 'c', '0', 'd', '0', 'e', '0', 'ee', '0', 'f']])
  await p.same([
    ['ZRANGE', 'z', '0', '-1', 'WITHSCORES'], ['ZRANGE', 'z', '-20', '-10'], ['ZRANGE', 'z', '10', '5'], ['ZRANGE', 'z', '0', '5', 'REV', 'WITHSCORES'], ['ZREVRANGE', 'z', '3', '9', 'WITHSCORES'],
    ['ZRANGE', 'z', '(-3', '7', 'BYSCORE'], ['ZRANGE', 'z', '7', '(-3', 'BYSCORE', 'REV', 'WITHSCORES'], ['ZRANGE', 'z', '-inf', '+inf', 'BYSCORE', 'LIMIT', '10', '5'],
    ['ZRANGE', 'z', '-inf', '+inf', 'BYSCORE', 'LIMIT', '295', '-1'], ['ZRANGEBYSCORE', 'z', '10', '(12', 'WITHSCORES'], ['ZRANGEBYSCORE', 'z', '10', '20', 'LIMIT', '2', '3'],
    ['ZREVRANGEBYSCORE', 'z', '(12', '10'], ['ZREVRANGEBYSCORE', 'z', '+inf', '-inf', 'WITHSCORES', 'LIMIT', '0', '4'], ['ZRANGEBYSCORE', 'z', 'x', '1'], ['ZRANGEBYSCORE', 'z', '(', '1'],
    ['ZRANGE', 'lex', '[b', '(ee', 'BYLEX'], ['ZRANGE', 'lex', '+', '-', 'BYLEX', 'REV', 'LIMIT', '1', '3'], ['ZRANGEBYLEX', 'lex', '-', '[c'], ['ZRANGEBYLEX', 'lex', '(c', '+', 'LIMIT', '1', '2'],
    ['ZREVRANGEBYLEX', 'lex', '[e', '(b'], ['ZRANGEBYLEX', 'lex', 'b', 'c'], ['ZRANGE', 'lex', '0', '1', 'LIMIT', '0', '1'], ['ZRANGE', 'lex', '-', '+', 'BYLEX', 'WITHSCORES'],
    ['ZRANGE', 'z', '0', '1', 'BAD'], ['ZRANGE', 'none', '0', '-1'], ['ZRANGE', 'z', 'a', '1']
  ])
})

test('sorted sets: ZRANK/ZREVRANK, ZCOUNT/ZLEXCOUNT, ZREMRANGEBYRANK/SCORE/LEX, ZPOPMIN/ZPOPMAX', async () => {
  await p.same([['FLUSHALL']])
  await fill('z', 500)
  await p.same([['ZADD', 'lex', '0', 'a', '0', 'b', '0', 'c', '0', 'd', '0', 'e']])
  await p.same([
    ['ZRANK', 'z', 'm0'], ['ZRANK', 'z', 'm499'], ['ZREVRANK', 'z', 'm250'], ['ZRANK', 'z', 'zz'], ['ZRANK', 'none', 'a'],
    ['ZCOUNT', 'z', '-10', '10'], ['ZCOUNT', 'z', '(-10', '(10'], ['ZCOUNT', 'z', '100', '200'], ['ZCOUNT', 'z', 'x', '1'], ['ZLEXCOUNT', 'lex', '[b', '[d'], ['ZLEXCOUNT', 'lex', '-', '+'], ['ZLEXCOUNT', 'lex', 'b', '+'],
    ['ZREMRANGEBYRANK', 'z', '0', '9'], ['ZREMRANGEBYRANK', 'z', '-5', '-1'], ['ZREMRANGEBYSCORE', 'z', '(0', '5'], ['ZREMRANGEBYLEX', 'lex', '(a', '[c'], ['ZRANGE', 'lex', '0', '-1'],
    ['ZRANGE', 'z', '0', '-1', 'WITHSCORES'], ['ZPOPMIN', 'z'], ['ZPOPMAX', 'z', '3'], ['ZPOPMIN', 'z', '0'], ['ZPOPMIN', 'z', '-1'], ['ZPOPMIN', 'none'], ['ZPOPMAX', 'none', '2'],
    ['ZPOPMIN', 'lex', '10'], ['EXISTS', 'lex'], ['ZREMRANGEBYSCORE', 'z', '-inf', '+inf'], ['EXISTS', 'z']
  ])
})

test('ZRANK/ZREVRANK WITHSCORE, Redis 7.2 syntax (redis-server 7.0 lacks it, so the replies are spelled out)', async () => {
  await p.kv.pipeline([['DEL', 'zr'], ['ZADD', 'zr', '1.5', 'a', '2', 'b', '1e-322', 'tiny']])
  const got = (await p.kv.pipeline([['ZRANK', 'zr', 'a', 'WITHSCORE'], ['ZREVRANK', 'zr', 'a', 'withscore'], ['ZRANK', 'zr', 'tiny', 'WITHSCORE'],
    ['ZRANK', 'zr', 'nope', 'WITHSCORE'], ['ZRANK', 'none', 'a', 'WITHSCORE'], ['ZRANK', 'zr', 'a', 'WITHSCORES'], ['ZRANK', 'zr', 'a', 'WITHSCORE', 'x'], ['ZRANK', 'zr', 'nope']])).map(norm)
  assert.deepEqual(got, [[1, '1.5'], [1, '1.5'], [0, '1e-322'], null, null, 'ERR:ERR syntax error', "ERR:ERR wrong number of arguments for 'zrank' command", null])
})

test('sorted sets: ZUNIONSTORE and ZINTERSTORE with WEIGHTS and AGGREGATE, sets as sources', async () => {
  await p.same([['FLUSHALL']])
  await fill('a', 200)
  await p.same([['ZADD', 'b', '1', 'm1', '2', 'm2', '3', 'x'], ['SADD', 's', 'm1', 'm3', 'y'], ['SET', 'str', 'v']])
  await p.same([
    ['ZUNIONSTORE', 'u', '2', 'a', 'b'], ['ZRANGE', 'u', '0', '-1', 'WITHSCORES'], ['ZUNIONSTORE', 'u', '3', 'a', 'b', 's', 'WEIGHTS', '2', '3', '0.5', 'AGGREGATE', 'MAX'], ['ZRANGE', 'u', '0', '-1', 'WITHSCORES'],
    ['ZINTERSTORE', 'i', '2', 'a', 'b'], ['ZRANGE', 'i', '0', '-1', 'WITHSCORES'], ['ZINTERSTORE', 'i', '3', 'a', 'b', 's', 'AGGREGATE', 'MIN'], ['ZRANGE', 'i', '0', '-1', 'WITHSCORES'],
    ['ZINTERSTORE', 'i', '2', 'a', 'none'], ['EXISTS', 'i'], ['ZUNIONSTORE', 'u', '1', 'u'], ['ZCARD', 'u'], ['ZUNIONSTORE', 'u', '0', 'a'], ['ZUNIONSTORE', 'u', '3', 'a'],
    ['ZUNIONSTORE', 'u', '2', 'a', 'str'], ['ZUNIONSTORE', 'u', '1', 'a', 'WEIGHTS', 'x'], ['ZUNIONSTORE', 'u', '1', 'a', 'AGGREGATE', 'AVG'], ['ZUNIONSTORE', 'str', '1', 'b'], ['TYPE', 'str']
  ])
})

test('ZUNION, ZINTER, ZDIFF, ZDIFFSTORE and ZINTERCARD as redis-server does, options and errors too; scored replies in RESP3 (pairs, SCAN\'s strings)', async () => {
  await p.same([['FLUSHALL'], ['ZADD', 'za', '1', 'a', '2', 'b', '3', 'c'], ['ZADD', 'zb', '10', 'b', '20', 'c', '30', 'd'], ['SADD', 'sa', 'a', 'd', 'x'], ['SET', 'str', 'v']])
  const steps: Step[] = [
    ['ZUNION', 2, 'za', 'zb'], ['ZUNION', 2, 'za', 'zb', 'WITHSCORES'], ['ZUNION', 3, 'za', 'zb', 'sa', 'WEIGHTS', 2, 1, 5, 'AGGREGATE', 'MAX', 'WITHSCORES'],
    ['ZINTER', 2, 'za', 'zb', 'WITHSCORES'], ['ZINTER', 2, 'za', 'zb', 'AGGREGATE', 'MIN', 'WITHSCORES'], ['ZINTER', 2, 'za', 'sa', 'WITHSCORES'], ['ZINTER', 2, 'za', 'none'],
    ['ZDIFF', 2, 'za', 'zb', 'WITHSCORES'], ['ZDIFF', 1, 'za'], ['ZDIFF', 3, 'zb', 'za', 'sa'], ['ZDIFF', 2, 'none', 'za'],
    ['ZDIFFSTORE', 'zd', 2, 'zb', 'za'], ['ZRANGE', 'zd', 0, -1, 'WITHSCORES'], ['ZDIFFSTORE', 'zd', 2, 'za', 'za'], ['EXISTS', 'zd'],
    ['ZINTERCARD', 2, 'za', 'zb'], ['ZINTERCARD', 2, 'za', 'zb', 'LIMIT', 1], ['ZINTERCARD', 3, 'za', 'zb', 'sa'], ['ZINTERCARD', 1, 'za', 'LIMIT', 0],
    ['ZUNION', 0, 'za'], ['ZUNION', 3, 'za'], ['ZUNION', 'x', 'za'], ['ZUNION', 2, 'za', 'str'], ['ZUNION', 1, 'za', 'WEIGHTS', 'x'], ['ZUNION', 1, 'za', 'AGGREGATE', 'AVG'],
    ['ZDIFF', 2, 'za', 'zb', 'WEIGHTS', 1, 2], ['ZDIFFSTORE', 'zd', 1, 'za', 'WITHSCORES'], ['ZINTERCARD', 1, 'za', 'LIMIT', -1], ['ZINTERCARD', 1, 'za', 'LIMIT', 'a'], ['ZINTERCARD', 1, 'za', 'WITHSCORES'], ['ZINTERCARD', 0, 'za']
  ]
  await p.same(steps)
  await Promise.all([p.kv.call('HELLO', '3'), p.redis.call('HELLO', '3')])
  await p.same([['ZUNION', 2, 'za', 'zb', 'WITHSCORES'], ['ZRANGE', 'za', 0, -1, 'WITHSCORES'], ['ZRANGEBYSCORE', 'za', '-inf', '+inf', 'WITHSCORES'], ['ZDIFF', 1, 'za'],
    ['ZSCAN', 'za', 0], { cmd: ['ZRANDMEMBER', 'za', 3, 'WITHSCORES'], unordered: 'items' }, ['ZPOPMIN', 'zb'], ['ZPOPMIN', 'zb', 1], ['ZPOPMAX', 'zb', 5], ['ZPOPMAX', 'none', 2]])
  await Promise.all([p.kv.call('HELLO', '2'), p.redis.call('HELLO', '2')])
})

test('ZRANGESTORE by rank, score and lex, REV and LIMIT, into itself, an empty range and errors, as redis-server does', async () => {
  await p.same([['FLUSHALL']])
  await fill('src', 300)
  await p.same([['ZADD', 'lx', '0', 'a', '0', 'b', '0', 'c', '0', 'd'], ['SET', 'str', 'v'], ['ZADD', 'dst', '1', 'old']])
  await p.same([
    ['ZRANGESTORE', 'dst', 'src', 0, 9], ['ZRANGE', 'dst', 0, -1, 'WITHSCORES'], ['ZRANGESTORE', 'dst', 'src', -5, -1, 'REV'], ['ZRANGE', 'dst', 0, -1, 'WITHSCORES'],
    ['ZRANGESTORE', 'dst', 'src', '(0', 10, 'BYSCORE', 'LIMIT', 2, 5], ['ZRANGE', 'dst', 0, -1, 'WITHSCORES'], ['ZRANGESTORE', 'dst', 'src', '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 3],
    ['ZRANGE', 'dst', 0, -1, 'WITHSCORES'], ['ZRANGESTORE', 'd2', 'lx', '[b', '+', 'BYLEX'], ['ZRANGE', 'd2', 0, -1], ['ZRANGESTORE', 'src', 'src', 0, 4], ['ZCARD', 'src'],
    ['ZRANGESTORE', 'dst', 'src', 100, 200], ['EXISTS', 'dst'], ['ZRANGESTORE', 'dst', 'none', 0, -1], ['EXISTS', 'dst'],
    ['ZRANGESTORE', 'dst', 'src', 0, -1, 'WITHSCORES'], ['ZRANGESTORE', 'dst', 'src', 0, -1, 'LIMIT', 0, 1], ['ZRANGESTORE', 'dst', 'src', 'x', 1], ['ZRANGESTORE', 'dst', 'src', 'x', 1, 'BYSCORE'],
    ['ZRANGESTORE', 'dst', 'str', 0, -1], ['ZRANGESTORE', 'dst', 'src', 0]
  ])
})

test('sorted sets: ZRANDMEMBER counts and ZSCAN coverage', async () => {
  await p.same([['FLUSHALL']])
  await fill('z', 400)
  await p.same([['ZRANDMEMBER', 'none'], ['ZRANDMEMBER', 'none', '3'], ['ZRANDMEMBER', 'z', '0'], ['ZRANDMEMBER', 'z', 'x'], ['ZRANDMEMBER', 'z', '1', 'BAD'], ['ZSCAN', 'none', '0'], ['ZSCAN', 'z', 'x']])
  const [one, some, all, ws] = await p.ours(['ZRANDMEMBER', 'z'], ['ZRANDMEMBER', 'z', '7'], ['ZRANDMEMBER', 'z', '1000'], ['ZRANDMEMBER', 'z', '-3', 'WITHSCORES']) as [string, string[], string[], string[]]
  assert.match(one, /^m\d+$/)
  assert.equal(new Set(some).size, 7)
  assert.equal(new Set(all).size, 400)
  assert.equal(ws.length, 6)
  const seen = new Map<string, string>()
  let cursor = '0'
  let calls = 0
  do {
    const [r] = await p.ours(['ZSCAN', 'z', cursor, 'COUNT', '25']) as [[string, string[]]]
    cursor = r[0]
    for (let i = 0; i < r[1].length; i += 2) seen.set(r[1][i], r[1][i + 1])
  } while (cursor !== '0' && ++calls < 10000)
  assert.equal(seen.size, 400)
  const [scores] = await p.same([pairs('ZRANGE', 'z', '0', '-1', 'WITHSCORES')]) as [string[][]]
  for (const [m, s] of scores) assert.equal(seen.get(m), s)
})
