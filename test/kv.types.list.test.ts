import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startPair, type Pair } from './fixtures/kv-types.ts'

let p: Pair
before(async () => { p = await startPair() })
after(async () => { await p.close() })

test('lists: pushes and pops (with count), LLEN, LRANGE, LINDEX answer as redis-server does', async () => {
  await p.same([['FLUSHALL']])
  await p.same([
    ['RPUSH', 'l', 'a', 'b', 'c'], ['LPUSH', 'l', 'x', 'y'], ['LPUSHX', 'l', 'z'], ['RPUSHX', 'l', 'w'], ['LPUSHX', 'none', 'a'], ['RPUSHX', 'none', 'a'],
    ['LRANGE', 'l', '0', '-1'], ['LRANGE', 'l', '-3', '2'], ['LRANGE', 'l', '5', '100'], ['LRANGE', 'l', '10', '20'], ['LRANGE', 'none', '0', '-1'], ['LRANGE', 'l', 'a', '1'],
    ['LINDEX', 'l', '0'], ['LINDEX', 'l', '-1'], ['LINDEX', 'l', '99'], ['LINDEX', 'l', 'x'], ['LLEN', 'l'], ['LLEN', 'none'],
    ['LPOP', 'l'], ['RPOP', 'l'], ['LPOP', 'l', '2'], ['RPOP', 'l', '0'], ['RPOP', 'l', '-1'], ['LPOP', 'none'], ['LPOP', 'none', '2'], ['RPOP', 'l', '10'], ['EXISTS', 'l'], ['LPOP', 'l', '1', 'x']
  ])
})

test('lists: LSET, LREM, LTRIM, LINSERT, LPOS with their options and errors', async () => {
  await p.same([['FLUSHALL']])
  await p.same([
    ['RPUSH', 'l', 'a', 'b', 'a', 'c', 'a', 'd'], ['LSET', 'l', '1', 'B'], ['LSET', 'l', '-1', 'D'], ['LSET', 'l', '9', 'x'], ['LSET', 'none', '0', 'x'],
    ['LRANGE', 'l', '0', '-1'], ['LPOS', 'l', 'a'], ['LPOS', 'l', 'a', 'RANK', '2'], ['LPOS', 'l', 'a', 'RANK', '-1'], ['LPOS', 'l', 'a', 'COUNT', '0'],
    ['LPOS', 'l', 'a', 'COUNT', '2', 'RANK', '-1'], ['LPOS', 'l', 'a', 'MAXLEN', '2', 'COUNT', '0'], ['LPOS', 'l', 'zz'], ['LPOS', 'l', 'zz', 'COUNT', '1'],
    ['LPOS', 'l', 'a', 'RANK', '0'], ['LPOS', 'l', 'a', 'COUNT', '-1'], ['LPOS', 'l', 'a', 'MAXLEN', '-1'], ['LPOS', 'l', 'a', 'BAD', '1'], ['LPOS', 'none', 'a'],
    ['LINSERT', 'l', 'BEFORE', 'c', 'c0'], ['LINSERT', 'l', 'AFTER', 'c', 'c1'], ['LINSERT', 'l', 'AFTER', 'zz', 'q'], ['LINSERT', 'none', 'BEFORE', 'a', 'q'], ['LINSERT', 'l', 'MIDDLE', 'a', 'q'],
    ['LRANGE', 'l', '0', '-1'], ['LREM', 'l', '1', 'a'], ['LRANGE', 'l', '0', '-1'], ['RPUSH', 'l', 'a', 'a'], ['LREM', 'l', '-2', 'a'], ['LRANGE', 'l', '0', '-1'],
    ['LREM', 'l', '0', 'a'], ['LREM', 'none', '0', 'a'], ['LRANGE', 'l', '0', '-1'], ['LTRIM', 'l', '1', '-2'], ['LRANGE', 'l', '0', '-1'], ['LTRIM', 'l', '5', '1'], ['EXISTS', 'l'], ['LTRIM', 'none', '0', '1']
  ])
})

test('lists: LMOVE and RPOPLPUSH, to itself and to another list, with WRONGTYPE', async () => {
  await p.same([['FLUSHALL']])
  await p.same([
    ['RPUSH', 'a', '1', '2', '3'], ['LMOVE', 'a', 'a', 'LEFT', 'RIGHT'], ['LRANGE', 'a', '0', '-1'], ['RPOPLPUSH', 'a', 'b'], ['LMOVE', 'a', 'b', 'LEFT', 'LEFT'],
    ['LRANGE', 'a', '0', '-1'], ['LRANGE', 'b', '0', '-1'], ['LMOVE', 'a', 'b', 'RIGHT', 'RIGHT'], ['EXISTS', 'a'], ['LMOVE', 'a', 'b', 'LEFT', 'LEFT'],
    ['LMOVE', 'b', 'c', 'UP', 'LEFT'], ['SET', 's', 'x'], ['LMOVE', 'b', 's', 'LEFT', 'LEFT'], ['LRANGE', 'b', '0', '-1'], ['LMOVE', 's', 'b', 'LEFT', 'LEFT'],
    ['LPUSH', 's', 'x'], ['LRANGE', 's', '0', '1'], ['RPOPLPUSH', 'none', 'b'], ['TYPE', 'b']
  ])
})

test('lists: a long list across many nodes, with big elements, matches redis-server index for index', async () => {
  await p.same([['FLUSHALL']])
  const push: string[] = ['RPUSH', 'big']
  for (let i = 0; i < 3000; i++) push.push(`e${i}:` + 'x'.repeat(i % 90))
  const lpush: string[] = ['LPUSH', 'big']
  for (let i = 0; i < 500; i++) lpush.push(`h${i}`)
  const huge = 'H'.repeat(20000)
  await p.same([push, lpush, ['RPUSH', 'big', huge], ['LINSERT', 'big', 'BEFORE', 'e1500:' + 'x'.repeat(1500 % 90), huge], ['LLEN', 'big']])
  const probes: string[][] = []
  for (let i = -3600; i < 3600; i += 97) probes.push(['LINDEX', 'big', String(i)])
  await p.same([...probes, ['LRANGE', 'big', '0', '-1'], ['LRANGE', 'big', '-700', '-600'], ['LPOS', 'big', huge, 'COUNT', '0'], ['LPOS', 'big', 'e2999:' + 'x'.repeat(2999 % 90), 'RANK', '-1']])
  await p.same([['LSET', 'big', '1000', 'y'.repeat(5000)], ['LREM', 'big', '0', huge], ['LTRIM', 'big', '100', '-100'], ['LRANGE', 'big', '0', '-1']])
  const pops: string[][] = []
  for (let i = 0; i < 40; i++) pops.push(['LPOP', 'big', '50'], ['RPOP', 'big', '20'])
  await p.same([...pops, ['LLEN', 'big'], ['EXISTS', 'big']])
})

test('lists: LPUSH/RPOP as a queue of 20,000 keeps order and frees its nodes', async () => {
  await p.ours(['FLUSHALL'])
  const cmds: string[][] = []
  for (let i = 0; i < 20000; i++) cmds.push(['LPUSH', 'q', `job:${i}`])
  await p.kv.pipeline(cmds)
  const pops = Array.from({ length: 200 }, () => ['RPOP', 'q', '100'])
  const got = (await p.ours(...pops)).flat() as string[]
  assert.equal(got.length, 20000)
  got.forEach((v, i) => assert.equal(v, `job:${i}`))
  assert.deepEqual(await p.ours(['EXISTS', 'q'], ['LLEN', 'q']), [0, 0])
  const info = String((await p.ours(['INFO', 'memory']))[0])
  // Every node went back to the heap with its list: nothing in use but what other keys hold (none).
  assert.match(info, /used_memory:\d+/)
})

test('lists: LPOS RANK takes -LONG_MAX..LONG_MAX as Redis 7.2 does, and huge ranks, counts and maxlens mean "all"', async () => {
  await p.same([['FLUSHALL'], ['RPUSH', 'l', 'a', 'b', 'c', 'c']])
  assert.deepEqual(await p.ours(['LPOS', 'l', 'c', 'RANK', '-9223372036854775808'], ['LPOS', 'l', 'c', 'RANK', '-9223372036854775807'], ['LPOS', 'l', 'c', 'RANK', '9223372036854775807'],
    ['LPOS', 'l', 'c', 'COUNT', '9223372036854775807'], ['LPOS', 'l', 'c', 'RANK', '-1', 'MAXLEN', '9223372036854775807'], ['LPOS', 'l', 'c', 'RANK', '9223372036854775808']), [
    'ERR:ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807', null, null, [2, 3], 3,
    'ERR:ERR value is not an integer or out of range'])
})
