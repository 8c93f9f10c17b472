import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Store } from '../src/kv/store.ts'
import { KvServer } from '../src/kv/server.ts'
import { KvClient, RespError, RespPush, type RespValue } from '../src/kv/client.ts'
import { rawExchange, withUpgradableKv } from './fixtures/kv-proc.ts'

let server: KvServer
let port: number
let pub: KvClient

before(async () => {
  server = new KvServer(new Store({ segmentSize: 1024 * 1024 }))
  port = await server.listen(0)
  pub = await KvClient.connect(port)
})
after(async () => {
  await pub.close()
  await server.close()
})

const str = (v: RespValue): unknown => Buffer.isBuffer(v) ? v.toString() : Array.isArray(v) ? v.map(str) : v instanceof RespPush ? { push: v.items.map(str) } : v instanceof RespError ? `ERR:${v.message}` : v
const next = async (c: KvClient): Promise<unknown> => str(await c.next())

test('SUBSCRIBE, PSUBSCRIBE, PUBLISH and the UNSUBSCRIBEs, with Redis\'s replies', async () => {
  const s = await KvClient.connect(port)
  s.send('SUBSCRIBE', 'chan1', 'chan2', 'chan1')
  assert.deepEqual([await next(s), await next(s), await next(s)], [['subscribe', 'chan1', 1], ['subscribe', 'chan2', 2], ['subscribe', 'chan1', 2]])
  s.send('PSUBSCRIBE', 'foo.*')
  assert.deepEqual(await next(s), ['psubscribe', 'foo.*', 3])
  assert.deepEqual(str(await pub.call('PUBLISH', 'chan1', 'hello')), 1)
  assert.deepEqual(str(await pub.call('PUBLISH', 'foo.bar', 'world')), 1)
  assert.deepEqual(str(await pub.call('PUBLISH', 'nobody', 'x')), 0)
  assert.deepEqual([await next(s), await next(s)], [['message', 'chan1', 'hello'], ['pmessage', 'foo.*', 'foo.bar', 'world']])
  assert.deepEqual(str(await pub.call('PUBSUB', 'NUMSUB', 'chan1', 'zz')), ['chan1', 1, 'zz', 0])
  assert.deepEqual(str(await pub.call('PUBSUB', 'NUMPAT')), 1)
  assert.deepEqual((str(await pub.call('PUBSUB', 'CHANNELS')) as string[]).sort(), ['chan1', 'chan2'])
  assert.deepEqual(str(await pub.call('PUBSUB', 'CHANNELS', '*2')), ['chan2'])
  // RESP2 subscribed mode: only (un)subscribe, PING, QUIT and RESET; PING answers as a message.
  s.send('GET', 'x')
  assert.deepEqual(await next(s), "ERR:ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
  s.send('PING')
  s.send('PING', 'foo')
  assert.deepEqual([await next(s), await next(s)], [['pong', ''], ['pong', 'foo']])
  s.send('UNSUBSCRIBE')
  assert.deepEqual([await next(s), await next(s)], [['unsubscribe', 'chan1', 2], ['unsubscribe', 'chan2', 1]])
  s.send('PUNSUBSCRIBE', 'foo.*', 'bar.*')
  assert.deepEqual([await next(s), await next(s)], [['punsubscribe', 'foo.*', 0], ['punsubscribe', 'bar.*', 0]])
  s.send('UNSUBSCRIBE')
  assert.deepEqual(await next(s), ['unsubscribe', null, 0])
  assert.equal(str(await pub.call('PUBLISH', 'chan1', 'hello')), 0)
  assert.deepEqual(str(await s.call('PING')), 'PONG')
  await s.close()
})

test('RESP3: messages are pushes, any command runs while subscribed, and a publish to self inside MULTI follows the EXEC reply', async () => {
  const s = await KvClient.connect(port)
  await s.call('HELLO', '3')
  s.send('SUBSCRIBE', 'foo')
  assert.deepEqual(await next(s), { push: ['subscribe', 'foo', 1] })
  assert.deepEqual(str(await s.call('PING')), 'PONG')
  assert.deepEqual((await s.pipeline([['MULTI'], ['PING', 'abc'], ['PUBLISH', 'foo', 'bar'], ['PUBLISH', 'foo', 'vaz'], ['PING', 'def'], ['EXEC']])).map(str),
    ['OK', 'QUEUED', 'QUEUED', 'QUEUED', 'QUEUED', ['abc', 1, 1, 'def']])
  assert.deepEqual([await next(s), await next(s)], [{ push: ['message', 'foo', 'bar'] }, { push: ['message', 'foo', 'vaz'] }])
  // On the wire: '>' pushes, in order after the reply they follow.
  const raw = await rawExchange(port, async (sock) => { sock.write('HELLO 3\r\nSUBSCRIBE c\r\nPUBLISH c m\r\n') })
  assert.ok(raw.text.endsWith('>3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n'), raw.text)
  await s.close()
})

test('a closed subscriber leaves its channels and patterns', async () => {
  const s = await KvClient.connect(port)
  s.send('SUBSCRIBE', 'gone')
  s.send('PSUBSCRIBE', 'go*')
  await next(s)
  await next(s)
  assert.equal(str(await pub.call('PUBLISH', 'gone', 'x')), 2)
  await s.close()
  for (const until = Date.now() + 5000; server.hub.pubsub.channels.size > 0 && Date.now() < until;) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(server.hub.pubsub.channels.size, 0)
  assert.equal(server.hub.pubsub.patterns.size, 0)
  assert.equal(str(await pub.call('PUBLISH', 'gone', 'x')), 0)
})

/** Publishes `${tag}:${i}` one after the other until told to stop; records each PUBLISH's receiver count. */
function publisher (c: KvClient, tag: string): { stop: () => Promise<number[]> } {
  const counts: number[] = []
  let stopped = false
  const loop = (async () => {
    while (!stopped) counts.push(await c.call('PUBLISH', 'news', `${tag}:${counts.length}`) as number)
  })()
  return { stop: async () => { stopped = true; await loop; return counts } }
}

test('live upgrades: subscribers (RESP2 channel, RESP3 pattern) receive every message published before, during and after, exactly once and in order', async () => {
  await withUpgradableKv('kv-pubsub-', [], async (kv) => {
    const s2 = await KvClient.connect(kv.port)
    const s3 = await KvClient.connect(kv.port)
    s2.send('SUBSCRIBE', 'news')
    assert.deepEqual(await next(s2), ['subscribe', 'news', 1])
    await s3.call('HELLO', '3')
    s3.send('PSUBSCRIBE', 'ne*')
    assert.deepEqual(await next(s3), { push: ['psubscribe', 'ne*', 1] })
    const pubs = await Promise.all(['a', 'b'].map(async () => await KvClient.connect(kv.port)))
    const running = pubs.map((c, i) => publisher(c, 'ab'[i]))
    await new Promise((resolve) => setTimeout(resolve, 200))
    for (let i = 0; i < 2; i++) {
      await kv.upgrade()
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const counts = await Promise.all(running.map(async (r) => await r.stop()))
    for (const [i, cs] of counts.entries()) {
      assert.ok(cs.length > 20, `publisher ${i} published only ${cs.length}`)
      assert.deepEqual(cs.filter((n) => n !== 2), [], 'every PUBLISH reached both subscribers')
    }
    for (const [s, kind] of [[s2, 'message'], [s3, 'pmessage']] as const) {
      const got: Record<string, number[]> = { a: [], b: [] }
      const total = counts[0].length + counts[1].length
      for (let n = 0; n < total; n++) {
        const m = str(await s.next(20_000)) as { push?: string[] } | string[]
        const items = Array.isArray(m) ? m : m.push as string[]
        assert.equal(items[0], kind)
        const [tag, seq] = String(items.at(-1)).split(':')
        got[tag].push(Number(seq))
      }
      for (const [i, tag] of ['a', 'b'].entries()) assert.deepEqual(got[tag], counts[i].map((_, k) => k), `${kind} ${tag}: lost, repeated or reordered`)
      assert.equal(s.unread, 0)
    }
    assert.match(String(await pubs[0].call('INFO', 'pagegift')), /generation:3\r\n/)
    await Promise.all([s2, s3, ...pubs].map(async (c) => await c.close()))
  })
})
