import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { Store } from '../src/kv/store.ts'
import { RecordType } from '../src/kv/segments.ts'
import { ExpirySweeper } from '../src/kv/expiry.ts'
import { nextCursor } from '../src/kv/scan.ts'
import { exactScore, formatScore } from '../src/kv/types/access.ts'
import { rawExchange } from './fixtures/kv-proc.ts'
import { localKv } from './fixtures/kv-local.ts'

const kv = localKv({ initialSlots: 64 })

const run = kv.run

function put (st: Store, k: string, at = 0, type = 0): void {
  const kb = Buffer.from(k)
  assert.ok(st.write(st.find(kb, 0, kb.length), kb, 0, kb.length, kb, 0, kb.length, at, type))
}

test('the reverse-binary cursor visits every bucket once, and a bucket\'s children after a doubling', () => {
  const seen: number[] = []
  let v = 0
  do { seen.push(v); v = nextCursor(v, 15) } while (v !== 0)
  assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 16 }, (_, i) => i))
  // After cursor 0b0100 with mask 15 the index doubles: the cursor goes on with mask 31 and still visits b and b+16 for every b not yet done.
  const done = new Set(seen.slice(0, seen.indexOf(4) + 1))
  let w = nextCursor(4, 15)
  const after: number[] = []
  while (w !== 0) { after.push(w); w = nextCursor(w, 31) }
  for (let b = 0; b < 16; b++) if (!done.has(b)) assert.ok(after.includes(b) && after.includes(b + 16), `bucket ${b}`)
})

test('SCAN returns every key present throughout, while keys are added (the index grows, incrementally) and deleted', async () => {
  await run(['FLUSHALL'])
  const stable = new Set<string>()
  const setup: (string | number)[][] = []
  for (let i = 0; i < 1500; i++) { stable.add(`stable:${i}`); setup.push(['SET', `stable:${i}`, 'v']) }
  for (let i = 0; i < 1500; i++) setup.push(['SET', `gone:${i}`, 'v'])
  await kv.c.pipeline(setup)
  const store = kv.server.dbs.db(0)
  const capacityBefore = store.index.capacity
  const seen = new Set<string>()
  let cursor = '0'
  let round = 0
  let migratingSeen = false
  do {
    const [r] = await run(['SCAN', cursor, 'COUNT', 20]) as [[string, string[]]]
    cursor = r[0]
    for (const k of r[1]) seen.add(k)
    const churn: (string | number)[][] = []
    for (let i = 0; i < 60; i++) churn.push(['SET', `new:${round}:${i}`, 'v'])
    for (let i = 0; i < 15; i++) churn.push(['DEL', `gone:${round * 15 + i}`])
    await kv.c.pipeline(churn)
    migratingSeen ||= (store as unknown as { migration: unknown }).migration !== null
    round++
  } while (cursor !== '0')
  for (const k of stable) assert.ok(seen.has(k), `SCAN missed ${k}`)
  assert.ok(store.index.capacity >= capacityBefore * 4, `the index grew during the scan (${capacityBefore} -> ${store.index.capacity})`)
  assert.ok(migratingSeen, 'some SCAN calls ran while the index was migrating')
})

test('SCAN TYPE filters by the record\'s type; an unknown type matches nothing; MATCH and COUNT errors', async () => {
  await run(['FLUSHALL'])
  const store = kv.server.dbs.db(0)
  for (let i = 0; i < 50; i++) put(store, `h:${i}`, 0, RecordType.hash)
  for (let i = 0; i < 30; i++) put(store, `s:${i}`)
  const collect = async (...opts: (string | number)[]): Promise<string[]> => {
    const keys: string[] = []
    let cursor = '0'
    do {
      const [r] = await run(['SCAN', cursor, ...opts]) as [[string, string[]]]
      cursor = r[0]
      keys.push(...r[1])
    } while (cursor !== '0')
    return keys
  }
  assert.equal((await collect('TYPE', 'hash')).length, 50)
  assert.equal((await collect('TYPE', 'STRING')).length, 30)
  assert.equal((await collect('TYPE', 'string1')).length, 0)
  assert.equal((await collect('TYPE', 'hash', 'MATCH', 'h:1*')).length, 11)
  assert.deepEqual(await run(['SCAN', 'abc'], ['SCAN', 0, 'COUNT', 0], ['SCAN', 0, 'COUNT', 'x'], ['SCAN', 0, 'BAD']),
    ['ERR:ERR invalid cursor', 'ERR:ERR syntax error', 'ERR:ERR value is not an integer or out of range', 'ERR:ERR syntax error'])
})

test('active expiry takes due keys from the expiry queue, earliest first, without walking the index', () => {
  const store = new Store({ segmentSize: 1024 * 1024 })
  const now = Date.now()
  for (let i = 0; i < 20000; i++) put(store, `plain:${i}`)
  for (let i = 0; i < 10; i++) put(store, `soon:${i}`, now + 10 + i)
  for (let i = 0; i < 10; i++) put(store, `later:${i}`, now + 60_000)
  // A rewrite moves a record (it no longer fits): its new place must be queued too.
  put(store, 'soon:0', now + 10)
  const kb = Buffer.from('soon:1')
  const big = Buffer.alloc(500, 1)
  store.write(store.find(kb, 0, kb.length), kb, 0, kb.length, big, 0, big.length, -1)
  const w = new ExpirySweeper(store)
  store.now = now + 5
  assert.equal(w.expireDue(100), 0)
  store.now = now + 100
  assert.equal(w.expireDue(4), 4, 'a bounded amount of work per call')
  assert.equal(w.expireDue(100), 6)
  assert.equal(store.size, 20010)
  assert.equal(store.expires, 10)
  for (let i = 0; i < 10; i++) assert.equal(store.find(Buffer.from(`soon:${i}`), 0, `soon:${i}`.length), -1)
})

test('an adopted store has no queue yet: the sweep rebuilds it over one lap, and then due keys go from the queue', () => {
  const old = new Store({ segmentSize: 1024 * 1024 })
  const now = Date.now()
  for (let i = 0; i < 100; i++) put(old, `k:${i}`, i < 40 ? now + 50 : 0)
  const store = Store.adopt(old.exportState())
  store.now = now
  const w = new ExpirySweeper(store, true)
  assert.equal(store.expiryQueue.size, 0)
  w.sweep(1 << 20)
  assert.equal(store.expiryQueue.size, 40)
  store.now = now + 100
  assert.equal(w.expireDue(1000), 40)
  assert.equal(store.size, 60)
})

test('keys with a TTL expire actively on a live kv.server (the suite\'s "actively expire keys incrementally")', async () => {
  await run(['FLUSHALL'], ['PSETEX', 'key1', 300, 'a'], ['PSETEX', 'key2', 300, 'a'], ['PSETEX', 'key3', 300, 'a'])
  assert.deepEqual(await run(['DBSIZE']), [3])
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && (await run(['DBSIZE']))[0] !== 0) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual(await run(['DBSIZE']), [0])
})

test('inline commands: quotes and escapes as sdssplitargs; unbalanced quotes are a protocol error that closes', async () => {
  const { text } = await rawExchange(kv.port, (s: net.Socket) => s.write('SET "a b" \'it\\\'s\'\r\nGET "a b"\r\nSET q "x\\x41\\n\\"y"\r\nSTRLEN q\r\nECHO ""\r\n'))
  assert.equal(text, '+OK\r\n$4\r\nit\'s\r\n+OK\r\n:5\r\n$0\r\n\r\n')
  for (const bad of ['SET "a b\r\n', 'SET "a"b c\r\n', "GET 'x\r\n"]) {
    const r = await rawExchange(kv.port, (s: net.Socket) => s.write(bad))
    assert.equal(r.text, '-ERR Protocol error: unbalanced quotes in request\r\n', bad)
    assert.ok(r.closed)
  }
})

test('protocol desync: a client that keeps sending after a protocol error sees its connection closed, not half-open', async () => {
  for (const seq of ['\x00', '*\x00', '$\x00']) {
    const s = net.connect(kv.port, '127.0.0.1')
    await new Promise((resolve) => s.once('connect', resolve))
    let reply = ''
    s.on('data', (d) => { reply += d.toString() })
    const failed = new Promise<boolean>((resolve) => { s.once('error', () => resolve(true)); s.once('close', () => resolve(true)) })
    s.write(seq)
    const deadline = Date.now() + 10_000
    let done = false
    void failed.then(() => { done = true })
    while (!done && Date.now() < deadline) {
      s.write('payload'.repeat(1000))
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    assert.ok(done, `the kv.server closed the connection after ${JSON.stringify(seq)}`)
    assert.match(reply, /Protocol error/)
    s.destroy()
  }
})

test('ZSCAN and ZSCORE give a tiny score exactly (the suite\'s issue #2175), not rounded to 0', async () => {
  await run(['DEL', 'tiny'])
  const adds: (string | number)[][] = []
  for (let j = 0; j < 500; j++) adds.push(['ZADD', 'tiny', '9.8813129168249309e-323', j])
  await kv.c.pipeline(adds)
  const [[, items], score] = await run(['ZSCAN', 'tiny', 0], ['ZSCORE', 'tiny', '7']) as [[string, string[]], string]
  assert.equal(Number(items[1]), 9.8813129168249309e-323)
  assert.equal(Number(score), 9.8813129168249309e-323)
})

test('scores read as Redis 7.2 writes them (fpconv_dtoa): shortest digits, plain or d.ddde+XX', () => {
  const cases: Array<[number, string]> = [[0.1, '0.1'], [1e-322, '1e-322'], [1.5e300, '1.5e+300'], [1e20, '1e+20'], [1e7, '10000000'],
    [123456789012345680, '123456789012345680'], [1e-5, '0.00001'], [1.5e-6, '1.5e-6'], [-2.5, '-2.5'], [-0, '-0'], [Infinity, 'inf'], [-Infinity, '-inf']]
  for (const [x, text] of cases) assert.equal(formatScore(x), text, String(x))
})

test('the fast path for integer scores writes what the general rule writes', () => {
  const xs = [0, 1, -1, 9, 10, 999999, 1000000, -1000000, 9999999, -9999999, 1e7, -1e7, 1e7 + 1, 2 ** 31, -(2 ** 31), 1e8, 123000000]
  let seed = 7
  for (let i = 0; i < 20000; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    xs.push((seed % 40_000_001) - 20_000_000)
  }
  for (const x of xs) assert.equal(formatScore(x), exactScore(x), String(x))
  assert.equal(formatScore(-0), '-0')
})
