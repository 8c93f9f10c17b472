import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { Store } from '../src/kv/store.ts'
import { KvServer } from '../src/kv/server.ts'
import { KvClient, type Arg } from '../src/kv/client.ts'
import { replyText as str, withUpgradableKv } from './fixtures/kv-proc.ts'
import { childKv } from './fixtures/kv-local.ts'

const kv = childKv()

/** A client subscribed to every keyspace and keyevent channel. */
async function subscriber (port: number): Promise<KvClient> {
  const s = await KvClient.connect(port)
  s.send('PSUBSCRIBE', '__key*__:*')
  assert.deepEqual(str(await s.next()), ['psubscribe', '__key*__:*', 1])
  return s
}

/** The next `n` notifications, as "channel payload". */
async function events (s: KvClient, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const m = str(await s.next(10_000)) as string[]
    assert.equal(m[0], 'pmessage')
    out.push(`${m[2]} ${m[3]}`)
  }
  return out
}

/** Nothing more arrives within `ms`. */
async function quiet (s: KvClient, ms = 200): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
  assert.equal(s.unread, 0, 'an unexpected message arrived')
}

async function run (c: KvClient, ...cmds: Arg[][]): Promise<unknown[]> {
  return (await c.pipeline(cmds)).map(str)
}

const ev = (db: number, list: string): string[] => list.trim().split(/\s*\n\s*/).map((l) => {
  const [event, key] = l.split(' ')
  return `__keyevent@${db}__:${event} ${key}`
})

test('every command built publishes Redis\'s keyevent names, in Redis\'s order', async () => {
  await run(kv.c, ['FLUSHALL'], ['CONFIG', 'SET', 'notify-keyspace-events', 'EA'])
  const s = await subscriber(kv.port)
  await run(kv.c,
    ['SET', 's', '1', 'EX', 100], ['APPEND', 's', 'x'], ['SETRANGE', 's', 0, 'y'], ['INCR', 'n'], ['INCRBYFLOAT', 'n', '1.5'],
    ['GETDEL', 's'], ['MSET', 'a', 1, 'b', 2], ['EXPIRE', 'a', 100], ['PERSIST', 'a'], ['RENAME', 'a', 'c'], ['COPY', 'c', 'd'],
    ['DEL', 'c', 'b', 'nothing'], ['SETNX', 'e', 1], ['SETEX', 'f', 100, 1], ['GETEX', 'f', 'PERSIST'], ['PEXPIREAT', 'e', 1],
    ['HSET', 'h', 'f', 1], ['HINCRBY', 'h', 'f', 2], ['HDEL', 'h', 'f'],
    ['RPUSH', 'l', 'a', 'b', 'c'], ['LPUSH', 'l', 'z'], ['LPOP', 'l'], ['RPOP', 'l'], ['LSET', 'l', 0, 'q'], ['LINSERT', 'l', 'BEFORE', 'q', 'p'],
    ['LREM', 'l', 0, 'p'], ['LTRIM', 'l', 0, 0], ['LMOVE', 'l', 'l2', 'LEFT', 'RIGHT'], ['LMPOP', 1, 'l2', 'LEFT'],
    ['SADD', 'st', 'a', 'b'], ['SADD', 'st', 'a'], ['SREM', 'st', 'a'], ['SMOVE', 'st', 'st2', 'b'], ['SPOP', 'st2'],
    ['SADD', 's1', 'x'], ['SINTERSTORE', 's3', 's1'],
    ['ZADD', 'z', 1, 'a', 2, 'b', 3, 'c'], ['ZINCRBY', 'z', 1, 'a'], ['ZREM', 'z', 'a'], ['ZPOPMIN', 'z'], ['ZREMRANGEBYSCORE', 'z', 0, 10],
    ['ZADD', 'z2', 1, 'x'], ['ZUNIONSTORE', 'z3', 1, 'z2'], ['ZMPOP', 1, 'z2', 'MAX'],
    ['RPUSH', 'sl', 3, 1, 2], ['SORT', 'sl', 'STORE', 'so'], ['SORT', 'nothing', 'STORE', 'so'])
  const want = ev(0, `set s
    expire s
    append s
    setrange s
    incrby n
    incrbyfloat n
    del s
    set a
    set b
    expire a
    persist a
    rename_from a
    rename_to c
    copy_to d
    del c
    del b
    set e
    set f
    expire f
    persist f
    del e
    hset h
    hincrby h
    hdel h
    del h
    rpush l
    lpush l
    lpop l
    rpop l
    lset l
    linsert l
    lrem l
    ltrim l
    rpush l2
    lpop l
    del l
    lpop l2
    del l2
    sadd st
    srem st
    srem st
    del st
    sadd st2
    spop st2
    del st2
    sadd s1
    sinterstore s3
    zadd z
    zincr z
    zrem z
    zpopmin z
    zremrangebyscore z
    del z
    zadd z2
    zunionstore z3
    zpopmax z2
    del z2
    rpush sl
    sortstore so
    del so`)
  assert.deepEqual(await events(s, want.length), want)
  await quiet(s)
  // MOVE: move_from in the source database, move_to in the destination's.
  await run(kv.c, ['SET', 'm', 1], ['MOVE', 'm', 5])
  assert.deepEqual(await events(s, 3), ['__keyevent@0__:set m', '__keyevent@0__:move_from m', '__keyevent@5__:move_to m'])
  await s.close()
})

test('blocking pops publish their events when a push serves them, in the waiter\'s database', async () => {
  await run(kv.c, ['FLUSHALL'], ['CONFIG', 'SET', 'notify-keyspace-events', 'KElg'])
  const s = await subscriber(kv.port)
  const waiter = await KvClient.connect(kv.port)
  await run(waiter, ['SELECT', 2])
  waiter.send('BLPOP', 'q', 0)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const other = await KvClient.connect(kv.port)
  await run(other, ['SELECT', 2], ['RPUSH', 'q', 'job'])
  assert.deepEqual(str(await waiter.next()), ['q', 'job'])
  assert.deepEqual(await events(s, 6), [
    '__keyspace@2__:q rpush', '__keyevent@2__:rpush q', '__keyspace@2__:q lpop', '__keyevent@2__:lpop q',
    '__keyspace@2__:q del', '__keyevent@2__:del q'])
  await quiet(s)
  await Promise.all([s, waiter, other].map(async (c) => await c.close()))
})

test('the flags select channels and classes; n reports new keys only; CONFIG GET answers as Redis', async () => {
  await run(kv.c, ['FLUSHALL'])
  const s = await subscriber(kv.port)
  const get = async (): Promise<unknown> => (await run(kv.c, ['CONFIG', 'GET', 'notify-keyspace-events']))[0]
  await run(kv.c, ['CONFIG', 'SET', 'notify-keyspace-events', 'K$'])
  await run(kv.c, ['SET', 'a', 1], ['LPUSH', 'l', 'x'], ['DEL', 'a'])
  assert.deepEqual(await events(s, 1), ['__keyspace@0__:a set'])
  await quiet(s)
  await run(kv.c, ['CONFIG', 'SET', 'notify-keyspace-events', 'En'])
  await run(kv.c, ['SET', 'foo', 'bar'], ['SET', 'foo', 'baz'], ['HSET', 'h', 'f', 'v'], ['HSET', 'h', 'g', 'v'], ['SET', 'bar', 'x'])
  assert.deepEqual(await events(s, 3), ['__keyevent@0__:new foo', '__keyevent@0__:new h', '__keyevent@0__:new bar'])
  await quiet(s)
  for (const [set, shown] of [['gKE', 'gKE'], ['$lshzxeKE', '$lshzxeKE'], ['KA', 'AK'], ['EA', 'AE'], ['Km', 'Km'], ['nd', 'dn'], ['', '']]) {
    assert.deepEqual(await run(kv.c, ['CONFIG', 'SET', 'notify-keyspace-events', set]), ['OK'])
    assert.deepEqual(await get(), ['notify-keyspace-events', shown])
  }
  // Off: nothing at all.
  await run(kv.c, ['SET', 'x', 1], ['DEL', 'x'])
  await quiet(s)
  await run(kv.c, ['CONFIG', 'SET', 'notify-keyspace-events', 'KA'])
  assert.deepEqual(await run(kv.c, ['CONFIG', 'SET', 'notify-keyspace-events', 'KAq']), [
    "ERR:ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."])
  assert.deepEqual(await get(), ['notify-keyspace-events', 'AK'], 'a refused value leaves the old one')
  await run(kv.c, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
  await s.close()
})

test('keys expired by active expiry publish expired, without any client touching them', async () => {
  await run(kv.c, ['FLUSHALL'], ['CONFIG', 'SET', 'notify-keyspace-events', 'Ex'])
  const s = await subscriber(kv.port)
  await run(kv.c, ['SELECT', 3], ['PSETEX', 'soon', 100, 1], ['SET', 'later', 1, 'PX', 300], ['SELECT', 0])
  assert.deepEqual(await events(s, 2), ['__keyevent@3__:expired soon', '__keyevent@3__:expired later'])
  await quiet(s)
  await run(kv.c, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
  await s.close()
})

test('keys expired lazily, on access, publish expired (a server without active expiry)', async () => {
  // In this process, with no housekeeping timer: only an access can expire a key.
  const server = new KvServer(new Store({ segmentSize: 1024 * 1024 }))
  const listener = net.createServer()
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
  server.adoptListener(listener)
  const c = await KvClient.connect(server.port)
  try {
    await run(c, ['CONFIG', 'SET', 'notify-keyspace-events', 'KEx'])
    const s = await subscriber(server.port)
    await run(c, ['SET', 'k', 1, 'PX', 50], ['HSET', 'h', 'f', 1], ['PEXPIRE', 'h', 50])
    await new Promise((resolve) => setTimeout(resolve, 150))
    await quiet(s, 50)
    assert.deepEqual(await run(c, ['GET', 'k'], ['EXISTS', 'h']), [null, 0])
    assert.deepEqual(await events(s, 4), ['__keyspace@0__:k expired', '__keyevent@0__:expired k', '__keyspace@0__:h expired', '__keyevent@0__:expired h'])
    await s.close()
  } finally {
    await c.close()
    await server.close()
  }
})

test('notifications off: no message, and a subscriber to the channels hears nothing', async () => {
  await run(kv.c, ['FLUSHALL'], ['CONFIG', 'SET', 'notify-keyspace-events', ''])
  const s = await subscriber(kv.port)
  await run(kv.c, ['SET', 'a', 1, 'PX', 50], ['LPUSH', 'l', 1], ['DEL', 'l'])
  await new Promise((resolve) => setTimeout(resolve, 200))
  await quiet(s)
  await s.close()
})

/** Sends the commands in one write and collects every reply that comes within `ms`. */
async function silentPipeline (port: number, cmds: Arg[][], ms = 300): Promise<unknown[]> {
  const c = await KvClient.connect(port)
  for (const cmd of cmds) c.send(...cmd)
  await new Promise((resolve) => setTimeout(resolve, ms))
  const got: unknown[] = []
  while (c.unread > 0) got.push(str(await c.next()))
  await c.close()
  return got
}

test('CLIENT REPLY OFF, ON and SKIP, in a pipeline, with Redis\'s replies and errors', async () => {
  await run(kv.c, ['FLUSHALL'])
  assert.deepEqual(await silentPipeline(kv.port, [
    ['CLIENT', 'REPLY', 'OFF'], ['SET', 'a', 1], ['GET', 'a'], ['CLIENT', 'REPLY', 'ON'], ['GET', 'a'],
    ['CLIENT', 'REPLY', 'SKIP'], ['INCR', 'a'], ['GET', 'a'],
    // SKIP is ignored while OFF; an ON right after a SKIP answers (it clears the skip).
    ['CLIENT', 'REPLY', 'OFF'], ['CLIENT', 'REPLY', 'SKIP'], ['CLIENT', 'REPLY', 'ON'], ['PING'],
    ['CLIENT', 'REPLY', 'SKIP'], ['CLIENT', 'REPLY', 'ON'], ['PING', 'x'],
    ['CLIENT', 'REPLY', 'MAYBE'], ['CLIENT', 'REPLY']
  ]), ['OK', '1', '2', 'OK', 'PONG', 'OK', 'x', 'ERR:ERR syntax error', "ERR:ERR wrong number of arguments for 'client|reply' command"])
  assert.deepEqual(await run(kv.c, ['GET', 'a']), ['2'], 'the silenced commands ran')
})

test('CLIENT REPLY SKIP or OFF before a blocking command drops its answer when it comes, as Redis does', async () => {
  await run(kv.c, ['FLUSHALL'])
  const pushLater = setTimeout(() => { void run(kv.c, ['RPUSH', 'q2', 'v']) }, 300)
  assert.deepEqual(await silentPipeline(kv.port, [
    ['CLIENT', 'REPLY', 'SKIP'], ['BLPOP', 'nolist', '0.2'], ['PING', 'after timeout'],
    ['CLIENT', 'REPLY', 'OFF'], ['BLPOP', 'q2', 5], ['CLIENT', 'REPLY', 'ON'], ['PING', 'after push']
  ], 1000), ['after timeout', 'OK', 'after push'])
  clearTimeout(pushLater)
  assert.deepEqual(await run(kv.c, ['EXISTS', 'q2']), [0], 'the silenced BLPOP popped')
})

test('CLIENT REPLY inside MULTI takes effect after EXEC, whose reply stays a whole array', async () => {
  await run(kv.c, ['FLUSHALL'])
  assert.deepEqual(await silentPipeline(kv.port, [
    ['MULTI'], ['CLIENT', 'REPLY', 'SKIP'], ['SET', 'c', 3], ['EXEC'], ['GET', 'c'], ['PING'],
    ['MULTI'], ['SET', 'c', 4], ['CLIENT', 'REPLY', 'OFF'], ['EXEC'], ['GET', 'c'], ['CLIENT', 'REPLY', 'ON'], ['GET', 'c']
  ]), ['OK', 'QUEUED', 'QUEUED', ['OK', 'OK'], 'PONG', 'OK', 'QUEUED', 'QUEUED', 'OK', '4'])
})

test('a client under CLIENT REPLY OFF or SKIP still gets its (un)subscribe confirmations and messages', async () => {
  const s = await KvClient.connect(kv.port)
  s.send('CLIENT', 'REPLY', 'OFF')
  s.send('SUBSCRIBE', 'ch')
  assert.deepEqual(str(await s.next()), ['subscribe', 'ch', 1])
  assert.deepEqual(await run(kv.c, ['PUBLISH', 'ch', 'hi']), [1])
  assert.deepEqual(str(await s.next()), ['message', 'ch', 'hi'])
  s.send('PING')
  s.send('UNSUBSCRIBE', 'ch')
  assert.deepEqual(str(await s.next()), ['unsubscribe', 'ch', 0])
  s.send('CLIENT', 'REPLY', 'ON')
  assert.equal(str(await s.next()), 'OK')
  await quiet(s)
  await s.close()
})

test('live upgrade: notify-keyspace-events and each client\'s CLIENT REPLY mode carry over', async () => {
  await withUpgradableKv('kv-notify-', [], async (kv) => {
    const c = await KvClient.connect(kv.port)
    assert.deepEqual(await run(c, ['CONFIG', 'GET', 'notify-keyspace-events']), [['notify-keyspace-events', '']], 'off by default')
    await run(c, ['CONFIG', 'SET', 'notify-keyspace-events', 'KEA'])
    const s = await subscriber(kv.port)
    const off = await KvClient.connect(kv.port)
    off.send('CLIENT', 'REPLY', 'OFF')
    const skip = await KvClient.connect(kv.port)
    skip.send('CLIENT', 'REPLY', 'SKIP')
    await run(c, ['SET', 'before', 1])
    assert.deepEqual(await events(s, 2), ['__keyspace@0__:before set', '__keyevent@0__:set before'])
    await new Promise((resolve) => setTimeout(resolve, 200))
    await kv.upgrade()
    const [cfg, info] = await run(c, ['CONFIG', 'GET', 'notify-keyspace-events'], ['INFO', 'pagegift'])
    assert.deepEqual(cfg, ['notify-keyspace-events', 'AKE'])
    assert.match(String(info), /generation:2\r\n/)
    await run(c, ['LPUSH', 'after', 'x'])
    assert.deepEqual(await events(s, 2), ['__keyspace@0__:after lpush', '__keyevent@0__:lpush after'])
    off.send('SET', 'quiet', 1)
    off.send('CLIENT', 'REPLY', 'ON')
    assert.equal(str(await off.next()), 'OK')
    skip.send('GET', 'before')
    skip.send('PING')
    assert.equal(str(await skip.next()), 'PONG')
    assert.deepEqual(await events(s, 2), ['__keyspace@0__:quiet set', '__keyevent@0__:set quiet'])
    await quiet(s)
    assert.equal(off.unread + skip.unread, 0)
    await Promise.all([c, s, off, skip].map(async (x) => await x.close()))
  })
})
