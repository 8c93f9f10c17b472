import { test } from 'node:test'
import assert from 'node:assert/strict'
import { KvClient } from '../src/kv/client.ts'
import { rawExchange, replyText as str } from './fixtures/kv-proc.ts'
import { localKv } from './fixtures/kv-local.ts'

const kv = localKv()

const run = async (k: KvClient, ...cmds: (string | number)[][]): Promise<unknown[]> => (await k.pipeline(cmds)).map(str)
const clients = async (n: number): Promise<KvClient[]> => await Promise.all(Array.from({ length: n }, async () => await KvClient.connect(kv.port)))
const settle = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 50)) }

test('BLPOP, BRPOP, BZPOPMIN/MAX and BLMOVE pop at once when there is something; errors are Redis\'s', async () => {
  await run(kv.c, ['FLUSHALL'], ['RPUSH', 'l', 'a', 'b', 'c'], ['ZADD', 'z', 1, 'one', 2, 'two', 3, 'three'], ['SET', 's', 'x'])
  assert.deepEqual(await run(kv.c, ['BLPOP', 'none', 'l', 0], ['BRPOP', 'l', 1], ['BLMOVE', 'l', 'd', 'LEFT', 'RIGHT', 0], ['LRANGE', 'd', 0, -1], ['EXISTS', 'l']),
    [['l', 'a'], ['l', 'c'], 'b', ['b'], 0])
  assert.deepEqual(await run(kv.c, ['BZPOPMIN', 'z', 0], ['BZPOPMAX', 'z', '0.5'], ['BRPOPLPUSH', 'd', 'l', 0]), [['z', 'one', '1'], ['z', 'three', '3'], 'b'])
  assert.deepEqual(await run(kv.c, ['BLPOP', 's', 0], ['BZPOPMIN', 'l', 0], ['BLPOP', 'l', 'x'], ['BLPOP', 'l', -1], ['BLMOVE', 'l', 'd', 'UP', 'LEFT', 0], ['BLPOP', 'l']), [
    'ERR:WRONGTYPE Operation against a key holding the wrong kind of value', 'ERR:WRONGTYPE Operation against a key holding the wrong kind of value',
    'ERR:ERR timeout is not a float or out of range', 'ERR:ERR timeout is negative', 'ERR:ERR syntax error', "ERR:ERR wrong number of arguments for 'blpop' command"])
  // Inside MULTI a blocking command does not block (Redis's "Blocking commands ignores the timeout").
  assert.deepEqual(await run(kv.c, ['MULTI'], ['BLPOP', 'e1', 0], ['BRPOPLPUSH', 'e1', 'e2', 0], ['BLMOVE', 'e1', 'e2', 'LEFT', 'LEFT', 0], ['BZPOPMIN', 'e3', 0], ['EXEC']),
    ['OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', [null, null, null, null]])
})

test('blocked clients are served first come, first served, by pushes from any client, inside EXEC too', async () => {
  await run(kv.c, ['FLUSHALL'])
  const [w1, w2, w3] = await clients(3)
  w1.send('BLPOP', 'q', 0)
  await settle()
  w2.send('BLPOP', 'other', 'q', 0)
  await settle()
  w3.send('BRPOP', 'q', 0)
  await settle()
  assert.equal(await kv.c.call('RPUSH', 'q', 'first', 'second'), 2)
  assert.deepEqual([str(await w1.next()), str(await w2.next())], [['q', 'first'], ['q', 'second']])
  // A push inside MULTI serves the waiter after EXEC, with the transaction's final state.
  assert.deepEqual(await run(kv.c, ['MULTI'], ['LPUSH', 'q', 'x'], ['LPUSH', 'q', 'y'], ['EXEC']), ['OK', 'QUEUED', 'QUEUED', [1, 2]])
  assert.deepEqual(str(await w3.next()), ['q', 'x'])
  assert.deepEqual(await run(kv.c, ['LRANGE', 'q', 0, -1]), [['y']])
  await Promise.all([w1, w2, w3].map(async (k) => await k.close()))
})

test('BLMOVE chains: a moved element serves the next waiter on the destination; BZPOPMIN is served by ZADD', async () => {
  await run(kv.c, ['FLUSHALL'])
  const [mover, taker, z] = await clients(3)
  mover.send('BLMOVE', 'src', 'dst', 'RIGHT', 'LEFT', 0)
  taker.send('BLPOP', 'dst', 0)
  await z.call('HELLO', '3')
  z.send('BZPOPMIN', 'zs', 0)
  await settle()
  await run(kv.c, ['RPUSH', 'src', 'v'], ['ZADD', 'zs', '2.5', 'm'])
  assert.deepEqual([str(await mover.next()), str(await taker.next()), str(await z.next())], ['v', ['dst', 'v'], ['zs', 'm', 2.5]])
  assert.deepEqual(await run(kv.c, ['EXISTS', 'src', 'dst', 'zs']), [0])
  await Promise.all([mover, taker, z].map(async (k) => await k.close()))
})

test('timeouts: a null array (BLMOVE: a null bulk; RESP3: null) at the deadline, and the commands sent behind a blocked one wait for it', async () => {
  const t0 = Date.now()
  const r2 = await rawExchange(kv.port, async (s) => { s.write('BLPOP nothing 0.2\r\nPING\r\n') }, 600)
  assert.equal(r2.text, '*-1\r\n+PONG\r\n')
  const r3 = await rawExchange(kv.port, async (s) => { s.write('HELLO 3\r\n'); await settle(); s.write('BLMOVE a b LEFT LEFT 0.1\r\nBZPOPMAX z 0.1\r\n') }, 600)
  assert.ok(r3.text.endsWith('_\r\n_\r\n'), r3.text)
  const r4 = await rawExchange(kv.port, async (s) => { s.write('BRPOPLPUSH a b 0.1\r\n') }, 400)
  assert.equal(r4.text, '$-1\r\n')
  assert.ok(Date.now() - t0 >= 400)
  // A client that closes while blocked leaves no waiter behind.
  const [gone] = await clients(1)
  gone.send('BLPOP', 'never', 0)
  await settle()
  assert.equal(kv.server.hub.blocking.active, true)
  await gone.close()
  for (const until = Date.now() + 5000; kv.server.hub.blocking.active && Date.now() < until;) await settle()
  assert.equal(kv.server.hub.blocking.active, false)
})

test('INFO clients counts the blocked clients (blocked_clients), as Redis\'s test suite waits on it', async () => {
  await run(kv.c, ['FLUSHALL'])
  const blocked = async (): Promise<string | undefined> => /blocked_clients:(\d+)/.exec(String(str((await kv.c.pipeline([['INFO', 'clients']]))[0])))?.[1]
  assert.equal(await blocked(), '0')
  const [a, b] = await clients(2)
  try {
    const got = [a.pipeline([['BLPOP', 'q', 10]]), b.pipeline([['BLMPOP', 10, 1, 'q', 'LEFT']])]
    await settle()
    assert.equal(await blocked(), '2')
    await run(kv.c, ['RPUSH', 'q', 'x', 'y'])
    assert.deepEqual((await Promise.all(got)).map((r) => r.map(str)), [[['q', 'x']], [['q', ['y']]]])
    assert.equal(await blocked(), '0')
  } finally {
    await Promise.all([a.close(), b.close()])
  }
})

test('a blocked BRPOPLPUSH whose destination became another type is woken with WRONGTYPE and pops nothing', async () => {
  await run(kv.c, ['FLUSHALL'], ['SET', 'target', 'nolist'])
  const [a] = await clients(1)
  try {
    const got = a.pipeline([['BRPOPLPUSH', 'blist', 'target', 10]])
    await settle()
    await run(kv.c, ['RPUSH', 'blist', 'a', 'b', 'c'])
    assert.deepEqual((await got).map(str), ['ERR:WRONGTYPE Operation against a key holding the wrong kind of value'])
    assert.deepEqual(await run(kv.c, ['LRANGE', 'blist', 0, -1], ['GET', 'target']), [['a', 'b', 'c'], 'nolist'])
  } finally {
    await a.close()
  }
})

test('SWAPDB wakes a client blocked on a key the swap brings in', async () => {
  await run(kv.c, ['FLUSHALL'], ['SELECT', 1], ['RPUSH', 'k', 'hello'], ['SELECT', 9])
  const [a] = await clients(1)
  try {
    const got = a.pipeline([['SELECT', 9], ['BRPOP', 'k', 10]])
    await settle()
    assert.deepEqual(await run(kv.c, ['SWAPDB', 1, 9]), ['OK'])
    assert.deepEqual((await got).map(str), ['OK', ['k', 'hello']])
  } finally {
    await run(kv.c, ['SELECT', 0])
    await a.close()
  }
})
