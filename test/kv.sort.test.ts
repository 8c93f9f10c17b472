/**
 * SORT and SORT_RO, against a real pagegift-kv process and Debian's redis-server side by side (every
 * reply compared, errors included), then what only one server can show: STORE with WATCH and
 * blocked pops, SORT inside MULTI.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { KvClient } from '../src/kv/client.ts'
import { startPair, items, type Pair } from './fixtures/kv-types.ts'
import { replyText as str } from './fixtures/kv-proc.ts'

let p: Pair
let other: KvClient
before(async () => {
  p = await startPair()
  other = await KvClient.connect(p.kvProc.port)
})
after(async () => {
  await other.close()
  await p.close()
})

const weights = [['MSET', 'w_3', '30', 'w_1', '10', 'w_2', '5', 'w_-5', '-1', 'o_1', 'one', 'o_3', 'three', 'o_10', 'ten'],
  ['HSET', 'h_1', 'f', 'z', 'g', '1'], ['HSET', 'h_2', 'f', 'a', 'g', '-2'], ['HSET', 'h_10', 'f', 'm']]

test('SORT on a list: numeric, DESC, ALPHA and LIMIT (negative, past the end, zero count) answer as redis-server does', async () => {
  await p.same([['FLUSHALL'], ['RPUSH', 'l', '3', '1', '2', '10', '-5', '2.5', '1e1']])
  await p.same([
    ['SORT', 'l'], ['SORT', 'l', 'DESC'], ['SORT', 'l', 'ALPHA'], ['SORT', 'l', 'ALPHA', 'DESC'], ['SORT', 'l', 'asc', 'desc', 'ASC'],
    ['SORT', 'l', 'LIMIT', '1', '2'], ['SORT', 'l', 'LIMIT', '-1', '2'], ['SORT', 'l', 'LIMIT', '10', '2'], ['SORT', 'l', 'LIMIT', '0', '0'],
    ['SORT', 'l', 'LIMIT', '2', '-1'], ['SORT', 'l', 'LIMIT', '5', '100'], ['SORT', 'l', 'LIMIT', '1', '2', 'LIMIT', '0', '1'], ['SORT', 'l', 'DESC', 'LIMIT', '0', '3'],
    ['SORT', 'l', 'LIMIT', '9223372036854775807', '9223372036854775807'], ['SORT', 'l', 'LIMIT', '-9223372036854775808', '3'], ['SORT', 'none'], ['SORT', 'none', 'LIMIT', '0', '1']
  ])
})

test('SORT BY: key patterns, hash fields (->), missing weights, and a constant (nosort) that keeps the stored order', async () => {
  await p.same([['FLUSHALL'], ['RPUSH', 'l', '3', '1', '2', '10', '-5'], ...weights])
  await p.same([
    ['SORT', 'l', 'BY', 'w_*'], ['SORT', 'l', 'BY', 'w_*', 'DESC'], ['SORT', 'l', 'BY', 'w_*', 'ALPHA'], ['SORT', 'l', 'BY', 'w_*', 'ALPHA', 'DESC'],
    ['SORT', 'l', 'BY', 'w_*', 'LIMIT', '1', '3'], ['SORT', 'l', 'BY', 'h_*->f', 'ALPHA'], ['SORT', 'l', 'BY', 'h_*->g'], ['SORT', 'l', 'BY', 'h_*->missing'],
    ['SORT', 'l', 'BY', 'o_*', 'ALPHA'], ['SORT', 'l', 'BY', 'h_*', 'ALPHA'], ['SORT', 'l', 'BY', 'nosort'], ['SORT', 'l', 'BY', 'nosort', 'DESC'],
    ['SORT', 'l', 'BY', 'nosort', 'LIMIT', '1', '2'], ['SORT', 'l', 'BY', 'nosort', 'DESC', 'LIMIT', '1', '3'], ['SORT', 'l', 'BY', 'nosort', 'LIMIT', '7', '1'],
    ['SORT', 'l', 'BY', 'w_*', 'BY', 'nosort'], ['SORT', 'l', 'BY', 'w_*->'], ['SORT', 'l', 'BY', '*']
  ])
})

test('SORT GET: #, key patterns, hash fields, patterns without * (nil), several GETs per element', async () => {
  await p.same([['FLUSHALL'], ['RPUSH', 'l', '3', '1', '2', '10'], ...weights])
  await p.same([
    ['SORT', 'l', 'GET', '#'], ['SORT', 'l', 'GET', 'o_*'], ['SORT', 'l', 'BY', 'w_*', 'GET', '#', 'GET', 'o_*', 'GET', 'h_*->f'],
    ['SORT', 'l', 'GET', 'nostar', 'GET', 'h_*->g', 'LIMIT', '0', '2'], ['SORT', 'l', 'BY', 'nosort', 'GET', 'w_*', 'DESC'],
    ['SORT', 'l', 'GET', 'h_*'], ['SORT', 'l', 'GET', 'o_*->f'], ['SORT', 'none', 'GET', '#']
  ])
})

test('SORT on sets and sorted sets: sorted, nosort (a sorted set keeps its score order), LIMIT', async () => {
  await p.same([['FLUSHALL'], ['SADD', 's', '5', '2', '9', '10', '-1'], ['SADD', 'sa', 'b', 'a', 'c'], ['ZADD', 'z', '1', 'c', '2', 'b', '3', 'a', '4', 'd']])
  await p.same([
    ['SORT', 's'], ['SORT', 's', 'DESC', 'LIMIT', '1', '2'], ['SORT', 'sa', 'ALPHA'], items('SORT', 's', 'BY', 'nosort'), ['SORT', 'sa'],
    ['SORT', 'z', 'BY', 'nosort'], ['SORT', 'z', 'BY', 'nosort', 'DESC'], ['SORT', 'z', 'BY', 'nosort', 'LIMIT', '1', '2'],
    ['SORT', 'z', 'BY', 'nosort', 'DESC', 'LIMIT', '1', '2'], ['SORT', 'z', 'ALPHA'], ['SORT', 'z', 'ALPHA', 'DESC', 'LIMIT', '0', '3'], ['SORT', 'z']
  ])
})

test('SORT errors: syntax, LIMIT not an integer, WRONGTYPE, weights that are not doubles, SORT_RO with STORE', async () => {
  await p.same([['FLUSHALL'], ['RPUSH', 'l', '1', '2'], ['SET', 'str', 'x'], ['HSET', 'h', 'f', 'v'], ['RPUSH', 'bad', '1', 'x']])
  await p.same([
    ['SORT'], ['SORT_RO'], ['SORT', 'str'], ['SORT', 'h'], ['SORT', 'l', 'FOO'], ['SORT', 'l', 'LIMIT', 'a', '1'], ['SORT', 'l', 'LIMIT', '0', '1.5'],
    ['SORT', 'l', 'LIMIT', '1'], ['SORT', 'l', 'BY'], ['SORT', 'l', 'GET'], ['SORT', 'l', 'STORE'], ['SORT', 'str', 'FOO'], ['SORT', 'str', 'LIMIT', 'x', '1'],
    ['SORT_RO', 'l', 'STORE', 'dst'], ['SORT', 'bad'], ['SORT', 'bad', 'ALPHA'], ['SORT', 'bad', 'BY', 'nosort'], ['SORT', 'bad', 'STORE', 'dst'], ['EXISTS', 'dst']
  ])
})

test('SORT weights are read as C strtod reads them: spaces before, hex, inf, empty; trailing text and NaN refused', async () => {
  // Overflow and underflow (ERANGE) are checked against ours only: redis-server 7.0 leaves errno set
  // afterwards, and then refuses every weight until something clears it.
  await p.same([['FLUSHALL'], ['RPUSH', 'ok', ' 10', '\t7', '0x10', '', 'inf', '-Infinity', '1.5', '0x1.8p1', '.5', '5.', '+3', '-0', '1\u00002', '1e308']])
  await p.same([['SORT', 'ok']])
  for (const bad of ['10 ', 'nan', '-nan', '0x', ' ', 'abc', '1e', '0x1p']) {
    await p.same([['DEL', 'b'], ['RPUSH', 'b', bad], ['SORT', 'b']])
  }
  for (const range of ['1e400', '-1e400', '1e-400', '4.9e-324', '1e-310']) {
    assert.deepEqual(await p.ours(['DEL', 'b'], ['RPUSH', 'b', range], ['SORT', 'b']), [1, 1, "ERR:ERR One or more scores can't be converted into double"])
  }
  assert.deepEqual(await p.ours(['SORT', 'ok', 'LIMIT', '0', '1']), [['-Infinity']])
})

test('SORT STORE: a list replacing any type and its TTL, GET misses stored as "", an empty result deleting the key', async () => {
  await p.same([['FLUSHALL'], ['RPUSH', 'l', '3', '1', '2'], ...weights, ['SADD', 's', 'b', 'c', 'a']])
  await p.same([
    ['SET', 'dst', 'x', 'EX', '100'], ['SORT', 'l', 'STORE', 'dst'], ['TYPE', 'dst'], ['TTL', 'dst'], ['LRANGE', 'dst', '0', '-1'],
    ['HSET', 'dst2', 'f', 'v'], ['SORT', 'l', 'GET', 'o_*', 'GET', '#', 'STORE', 'dst2', 'DESC'], ['LRANGE', 'dst2', '0', '-1'],
    ['SORT', 's', 'BY', 'nosort', 'STORE', 'dst3'], ['LRANGE', 'dst3', '0', '-1'], ['SORT', 'l', 'STORE', 'l', 'DESC', 'LIMIT', '0', '2'], ['LRANGE', 'l', '0', '-1'],
    ['SORT', 'none', 'STORE', 'dst'], ['EXISTS', 'dst'], ['SORT', 'l', 'LIMIT', '5', '1', 'STORE', 'dst2'], ['EXISTS', 'dst2'], ['SORT', 'none', 'STORE', 'none2'], ['EXISTS', 'none2'],
    ['SORT', 'l', 'STORE', 'a', 'STORE', 'b'], ['EXISTS', 'a', 'b']
  ])
})

test('SORT_RO sorts like SORT and is read-only in COMMAND INFO', async () => {
  await p.same([['FLUSHALL'], ['RPUSH', 'l', 'b', 'c', 'a'], ...weights])
  await p.same([['SORT_RO', 'l', 'ALPHA'], ['SORT_RO', 'l', 'ALPHA', 'DESC', 'LIMIT', '0', '2', 'GET', '#', 'GET', 'o_*'], ['SORT_RO', 'l', 'BY', 'nosort']])
  const [info] = await p.ours(['COMMAND', 'INFO', 'sort', 'sort_ro'])
  assert.deepEqual((info as unknown[][]).map((x) => x.slice(0, 6)), [
    ['sort', -2, ['write', 'denyoom', 'movablekeys'], 1, 1, 1],
    ['sort_ro', -2, ['readonly', 'movablekeys'], 1, 1, 1]
  ])
})

test('WATCH: SORT ... STORE touches its destination (even with an empty result), and a SORT without STORE touches nothing', async () => {
  const kv = p.kv
  const run = async (...cmds: (string | number)[][]): Promise<unknown[]> => (await kv.pipeline(cmds)).map(str)
  await run(['FLUSHALL'], ['RPUSH', 'src', '2', '1'], ['RPUSH', 'dst', 'x'])
  await run(['WATCH', 'dst'])
  await other.call('SORT', 'src', 'STORE', 'dst')
  assert.deepEqual(await run(['MULTI'], ['PING'], ['EXEC']), ['OK', 'QUEUED', null])
  await run(['WATCH', 'dst'])
  await other.call('SORT', 'empty', 'STORE', 'dst')
  assert.deepEqual(await run(['MULTI'], ['PING'], ['EXEC'], ['EXISTS', 'dst']), ['OK', 'QUEUED', null, 0])
  await run(['WATCH', 'src', 'dst'])
  await other.pipeline([['SORT', 'src'], ['SORT', 'src', 'BY', 'nosort', 'GET', '#'], ['SORT_RO', 'src']])
  assert.deepEqual(await run(['MULTI'], ['PING'], ['EXEC']), ['OK', 'QUEUED', ['PONG']])
})

test('SORT inside MULTI: queued, run at EXEC in order, STORE result visible to the next queued command', async () => {
  const run = async (...cmds: (string | number)[][]): Promise<unknown[]> => (await p.kv.pipeline(cmds)).map(str)
  await run(['FLUSHALL'], ['RPUSH', 'l', '3', '1', '2'])
  assert.deepEqual(await run(['MULTI'], ['SORT', 'l', 'DESC'], ['SORT', 'l', 'STORE', 'd'], ['LRANGE', 'd', '0', '-1'], ['SORT_RO', 'd', 'LIMIT', '0', '1'], ['SORT', 'l', 'FOO'], ['EXEC']),
    ['OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', [['3', '2', '1'], 3, ['1', '2', '3'], ['1'], 'ERR:ERR syntax error']])
  // Wrong arity is refused at queue time and aborts the transaction, as for any command.
  assert.deepEqual(await run(['MULTI'], ['SORT'], ['EXEC']),
    ['OK', "ERR:ERR wrong number of arguments for 'sort' command", 'ERR:EXECABORT Transaction discarded because of previous errors.'])
})

test('a client blocked in BLPOP on the STORE key is woken by SORT ... STORE', async () => {
  const blocked = await KvClient.connect(p.kvProc.port)
  try {
    await p.kv.pipeline([['FLUSHALL'], ['RPUSH', 'src', 'hola', 'aguacate', 'zanzibar']])
    blocked.send('BLPOP', 'dst', '10')
    const deadline = Date.now() + 10_000
    while (!String(await p.kv.call('INFO', 'clients')).includes('blocked_clients:1')) {
      assert.ok(Date.now() < deadline, 'BLPOP did not block')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await p.kv.call('SORT', 'src', 'ALPHA', 'STORE', 'dst')
    assert.deepEqual(str(await blocked.next(5000)), ['dst', 'aguacate'])
    assert.deepEqual(str(await p.kv.call('LRANGE', 'dst', '0', '-1')), ['hola', 'zanzibar'])
  } finally {
    await blocked.close()
  }
})
