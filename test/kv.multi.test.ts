import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Store } from '../src/kv/store.ts'
import { KvServer } from '../src/kv/server.ts'
import { KvClient } from '../src/kv/client.ts'
import { replyText as str, withUpgradableKv } from './fixtures/kv-proc.ts'

let server: KvServer
let port: number
let a: KvClient
let b: KvClient

before(async () => {
  server = new KvServer(new Store({ segmentSize: 1024 * 1024 }))
  port = await server.listen(0)
  a = await KvClient.connect(port)
  b = await KvClient.connect(port)
})
after(async () => {
  await a.close()
  await b.close()
  await server.close()
})

const run = async (c: KvClient, ...cmds: (string | number)[][]): Promise<unknown[]> => (await c.pipeline(cmds)).map(str)

test('MULTI queues, EXEC runs in order; DISCARD drops; the errors are Redis\'s', async () => {
  await run(a, ['FLUSHALL'])
  assert.deepEqual(await run(a, ['MULTI'], ['SET', 'x', '1'], ['INCR', 'x'], ['GET', 'x'], ['PING'], ['EXEC']),
    ['OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', ['OK', 2, '2', 'PONG']])
  assert.deepEqual(await run(a, ['MULTI'], ['DEL', 'x'], ['DISCARD'], ['GET', 'x']), ['OK', 'QUEUED', 'OK', '2'])
  assert.deepEqual(await run(a, ['EXEC'], ['DISCARD']), ['ERR:ERR EXEC without MULTI', 'ERR:ERR DISCARD without MULTI'])
  assert.deepEqual(await run(a, ['MULTI'], ['MULTI'], ['WATCH', 'x'], ['INCR', 'x'], ['EXEC']),
    ['OK', 'ERR:ERR MULTI calls can not be nested', 'ERR:ERR WATCH inside MULTI is not allowed', 'QUEUED', [3]])
  // A command that cannot be queued (unknown, wrong arity) aborts the whole transaction at EXEC.
  const aborted = await run(a, ['MULTI'], ['SET', 'y', '1'], ['NOPE', 'z'], ['GET'], ['SET', 'w', '2'], ['EXEC'], ['PING'], ['EXISTS', 'y', 'w'])
  assert.deepEqual(aborted.slice(0, 3), ['OK', 'QUEUED', "ERR:ERR unknown command 'NOPE', with args beginning with: 'z' "])
  assert.deepEqual(aborted.slice(3), ["ERR:ERR wrong number of arguments for 'get' command", 'QUEUED',
    'ERR:EXECABORT Transaction discarded because of previous errors.', 'PONG', 0])
  assert.deepEqual(await run(a, ['MULTI'], ['SAVE'], ['EXEC']), ['OK', 'ERR:ERR Command not allowed inside a transaction', 'ERR:EXECABORT Transaction discarded because of previous errors.'])
  // An error while running does not stop the rest (Redis has no rollback).
  assert.deepEqual(await run(a, ['SET', 's', 'abc'], ['MULTI'], ['INCR', 's'], ['SET', 't', '1'], ['EXEC']),
    ['OK', 'OK', 'QUEUED', 'QUEUED', ['ERR:ERR value is not an integer or out of range', 'OK']])
})

test('WATCH: a key touched by another client, by EXPIRE, by FLUSHALL or by expiring makes EXEC return a null array', async () => {
  await run(a, ['FLUSHALL'], ['SET', 'x', '30'])
  assert.deepEqual(await run(a, ['WATCH', 'x', 'y'], ['MULTI'], ['PING'], ['EXEC']), ['OK', 'OK', 'QUEUED', ['PONG']])
  await run(a, ['WATCH', 'x'])
  await run(b, ['SET', 'x', '40'])
  assert.deepEqual(await run(a, ['MULTI'], ['PING'], ['EXEC']), ['OK', 'QUEUED', null])
  // After a failed EXEC the key is no longer watched.
  await run(b, ['SET', 'x', '41'])
  assert.deepEqual(await run(a, ['MULTI'], ['PING'], ['EXEC']), ['OK', 'QUEUED', ['PONG']])
  assert.deepEqual(await run(a, ['WATCH', 'x'], ['SET', 'x', '1'], ['UNWATCH'], ['MULTI'], ['PING'], ['EXEC']), ['OK', 'OK', 'OK', 'OK', 'QUEUED', ['PONG']])
  assert.deepEqual(await run(a, ['WATCH', 'x'], ['EXPIRE', 'x', 10], ['MULTI'], ['PING'], ['EXEC']), ['OK', 1, 'OK', 'QUEUED', null])
  // FLUSHALL touches the watched keys that exist, and only those.
  assert.deepEqual(await run(a, ['SET', 'x', '1'], ['WATCH', 'x'], ['FLUSHALL'], ['MULTI'], ['PING'], ['EXEC']), ['OK', 'OK', 'OK', 'OK', 'QUEUED', null])
  assert.deepEqual(await run(a, ['WATCH', 'x'], ['FLUSHDB'], ['MULTI'], ['PING'], ['EXEC']), ['OK', 'OK', 'OK', 'QUEUED', ['PONG']])
  // A watched key that expires (the active sweep deletes it) fails EXEC too.
  await run(a, ['SET', 'e', 'v', 'PX', 30], ['WATCH', 'e'])
  await new Promise((resolve) => setTimeout(resolve, 120))
  assert.deepEqual(await run(a, ['EXISTS', 'e'], ['MULTI'], ['PING'], ['EXEC']), [0, 'OK', 'QUEUED', null])
  // DISCARD clears the dirty flag and the watches.
  assert.deepEqual(await run(a, ['WATCH', 'x'], ['SET', 'x', '10'], ['MULTI'], ['DISCARD'], ['MULTI'], ['INCR', 'x'], ['EXEC']),
    ['OK', 'OK', 'OK', 'OK', 'OK', 'QUEUED', [11]])
})

test('an error while EXEC runs a queued command is its element of the reply: CONFIG SET with a bad value answers Redis\'s text', async () => {
  assert.deepEqual(await run(a, ['MULTI'], ['SET', 'foo', 'bar'], ['CONFIG', 'SET', 'maxmemory', 'bla'], ['EXEC'], ['GET', 'foo']),
    ['OK', 'QUEUED', 'QUEUED', ['OK', "ERR:ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"], 'bar'])
})

test('watches live on the server only while watched: EXEC, UNWATCH and a closed client leave nothing behind', async () => {
  const c = await KvClient.connect(port)
  await run(c, ['WATCH', 'k1', 'k2'])
  assert.equal(server.hub.watches.active, true)
  await c.close()
  for (const until = Date.now() + 5000; server.hub.watches.active && Date.now() < until;) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(server.hub.watches.active, false, 'a closed client still watches')
  await run(a, ['WATCH', 'k'], ['MULTI'], ['EXEC'])
  assert.equal(server.hub.watches.active, false)
})

test('live upgrade: clients in the middle of MULTI continue their transactions in the successor, with their WATCHes', async () => {
  await withUpgradableKv('kv-multi-', [], async (kv) => {
    const [clean, touched, later, failed, other] = await Promise.all(Array.from({ length: 5 }, async () => await KvClient.connect(kv.port)))
    await run(other, ['SET', 'n', '10'], ['SET', 'w1', 'a'], ['SET', 'w2', 'a'], ['SET', 'w3', 'a'])
    // Watched and untouched: EXEC runs every command, queued before and after the upgrade.
    assert.deepEqual(await run(clean, ['WATCH', 'w1'], ['MULTI'], ['INCR', 'n'], ['SET', 'before', '1']), ['OK', 'OK', 'QUEUED', 'QUEUED'])
    // Touched before the upgrade: the dirty flag travels.
    assert.deepEqual(await run(touched, ['WATCH', 'w2'], ['MULTI'], ['INCR', 'n']), ['OK', 'OK', 'QUEUED'])
    await run(other, ['SET', 'w2', 'changed'])
    // Touched after the upgrade: the watch itself travels.
    assert.deepEqual(await run(later, ['WATCH', 'w3'], ['MULTI'], ['INCR', 'n']), ['OK', 'OK', 'QUEUED'])
    // A queueing error before the upgrade still aborts the EXEC after it.
    assert.deepEqual((await run(failed, ['MULTI'], ['INCR', 'n'], ['NOPE'])).slice(0, 2), ['OK', 'QUEUED'])
    await kv.upgrade()
    await run(other, ['SET', 'w3', 'changed'])
    assert.deepEqual(await run(clean, ['SET', 'after', '2'], ['EXEC']), ['QUEUED', [11, 'OK', 'OK']])
    assert.deepEqual(await run(touched, ['EXEC']), [null])
    assert.deepEqual(await run(later, ['INCR', 'n'], ['EXEC']), ['QUEUED', null])
    assert.deepEqual(await run(failed, ['EXEC']), ['ERR:EXECABORT Transaction discarded because of previous errors.'])
    assert.deepEqual(await run(other, ['MGET', 'n', 'before', 'after'], ['INFO', 'pagegift']).then((r) => r[0]), ['11', '1', '2'])
    // Nothing is left watched or queued: a new transaction on the same connections runs.
    assert.deepEqual(await run(later, ['WATCH', 'w3'], ['MULTI'], ['INCR', 'n'], ['EXEC']), ['OK', 'OK', 'QUEUED', [12]])
    assert.match(String(await other.call('INFO', 'pagegift')), /generation:2\r\n/)
    await Promise.all([clean, touched, later, failed, other].map(async (c) => await c.close()))
  })
})
