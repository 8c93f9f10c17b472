import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { Store } from '../src/kv/store.ts'
import { Databases, LAYOUTS } from '../src/kv/databases.ts'
import { RecordType } from '../src/kv/segments.ts'
import { KvClient } from '../src/kv/client.ts'
import { startKv, upgradeKv, type KvProc } from './fixtures/kv-proc.ts'
import { localKv } from './fixtures/kv-local.ts'

const kv = localKv()

const run = kv.run
const WRONGTYPE = 'ERR:WRONGTYPE Operation against a key holding the wrong kind of value'

/** Writes a record of another type straight into database `db`, as the type modules do. */
function putTyped (db: number, key: string, type: number): void {
  const s = kv.server.dbs.db(db)
  const k = Buffer.from(key)
  const v = Buffer.from('opaque')
  assert.ok(s.write(s.find(k, 0, k.length), k, 0, k.length, v, 0, v.length, 0, type | (7 << 8)))
}

test('type tags: TYPE answers from the tag; string commands answer WRONGTYPE; keyspace commands work on any type', async () => {
  await run(['FLUSHALL'])
  putTyped(0, 'h', RecordType.hash)
  putTyped(0, 'l', RecordType.list)
  putTyped(0, 'z', RecordType.zset)
  putTyped(0, 's', RecordType.set)
  assert.deepEqual(await run(['TYPE', 'h'], ['TYPE', 'l'], ['TYPE', 'z'], ['TYPE', 's'], ['SET', 'str', 'v'], ['TYPE', 'str']), ['hash', 'list', 'zset', 'set', 'OK', 'string'])
  assert.deepEqual(await run(['GET', 'h'], ['APPEND', 'h', 'x'], ['INCR', 'h'], ['INCRBY', 'h', 2], ['STRLEN', 'h'], ['GETSET', 'h', 'x'], ['SET', 'h', 'x', 'GET'], ['MGET', 'h', 'str']),
    [WRONGTYPE, WRONGTYPE, WRONGTYPE, WRONGTYPE, WRONGTYPE, WRONGTYPE, WRONGTYPE, [null, 'v']])
  assert.equal(kv.server.dbs.db(0).find(Buffer.from('h'), 0, 1) >= 0 && kv.server.dbs.db(0).seg.tag(kv.server.dbs.db(0).off), RecordType.hash | (7 << 8), 'the encoding bits are kept')
  assert.deepEqual(await run(['EXPIRE', 'l', 100], ['TTL', 'l'], ['EXISTS', 'l', 'z'], ['DEL', 'z'], ['TYPE', 'z'], ['PERSIST', 'l'], ['TTL', 'l']), [1, 100, 2, 1, 'none', 1, -1])
  // A plain SET replaces a value of any type with a string.
  assert.deepEqual(await run(['SET', 's', 'now a string'], ['TYPE', 's'], ['GET', 's']), ['OK', 'string', 'now a string'])
})

test('databases: SELECT, per-db keys, MOVE, SWAPDB, FLUSHDB, FLUSHALL, and their errors', async () => {
  await run(['FLUSHALL'])
  assert.deepEqual(await run(['SET', 'k', 'db0'], ['SELECT', 9], ['GET', 'k'], ['SET', 'k', 'db9'], ['SET', 'only9', 'x'], ['DBSIZE'], ['SELECT', 0], ['GET', 'k'], ['DBSIZE']),
    ['OK', 'OK', null, 'OK', 'OK', 2, 'OK', 'db0', 1])
  assert.deepEqual(await run(['SELECT', 16], ['SELECT', -1], ['SELECT', 'x'], ['MOVE', 'k', 0], ['MOVE', 'k', 16], ['MOVE', 'k', 'x'], ['SWAPDB', 'x', 1], ['SWAPDB', 1, 'y'], ['SWAPDB', 1, 99]),
    ['ERR:ERR DB index is out of range', 'ERR:ERR DB index is out of range', 'ERR:ERR value is not an integer or out of range', 'ERR:ERR source and destination objects are the same',
      'ERR:ERR DB index is out of range', 'ERR:ERR value is not an integer or out of range', 'ERR:ERR invalid first DB index', 'ERR:ERR invalid second DB index', 'ERR:ERR DB index is out of range'])
  // MOVE keeps the TTL and the type; it does nothing if the key exists in the target.
  putTyped(0, 'typed', RecordType.set)
  assert.deepEqual(await run(['SET', 'm', 'v', 'EX', 100], ['MOVE', 'm', 3], ['EXISTS', 'm'], ['MOVE', 'k', 9], ['MOVE', 'typed', 3], ['MOVE', 'nope', 3], ['SELECT', 3], ['TTL', 'm'], ['TYPE', 'typed'], ['SELECT', 0]),
    ['OK', 1, 0, 0, 1, 0, 'OK', 100, 'set', 'OK'])
  // SWAPDB: a client with db 0 selected sees db 9's data at once.
  assert.deepEqual(await run(['SWAPDB', 0, 9], ['GET', 'k'], ['GET', 'only9'], ['SELECT', 9], ['GET', 'k'], ['SELECT', 0]), ['OK', 'db9', 'x', 'OK', 'db0', 'OK'])
  assert.deepEqual(await run(['FLUSHDB'], ['DBSIZE'], ['SELECT', 9], ['DBSIZE'], ['FLUSHDB', 'ASYNC'], ['DBSIZE'], ['FLUSHDB', 'x'], ['SELECT', 3], ['DBSIZE'], ['FLUSHALL'], ['DBSIZE'], ['SELECT', 0]),
    ['OK', 0, 'OK', 1, 'OK', 0, 'ERR:ERR syntax error', 'OK', 2, 'OK', 0, 'OK'])
  assert.match(String(await kv.c.call('CONFIG', 'GET', 'databases')), /databases,16/)
})

test('RENAME, RENAMENX, COPY (DB, REPLACE) keep value, type and TTL, with Redis\'s errors', async () => {
  await run(['FLUSHALL'])
  putTyped(0, 'typed', RecordType.zset)
  assert.deepEqual(await run(['SET', 'a', '1', 'EX', 100], ['RENAME', 'a', 'b'], ['GET', 'a'], ['GET', 'b'], ['TTL', 'b'], ['RENAME', 'nope', 'x'], ['RENAME', 'b', 'b'], ['GET', 'b']),
    ['OK', 'OK', null, '1', 100, 'ERR:ERR no such key', 'OK', '1'])
  assert.deepEqual(await run(['SET', 'c', '2'], ['RENAMENX', 'b', 'c'], ['RENAMENX', 'b', 'd'], ['GET', 'd'], ['RENAME', 'typed', 'c'], ['TYPE', 'c'], ['RENAMENX', 'nope', 'x']),
    ['OK', 0, 1, '1', 'OK', 'zset', 'ERR:ERR no such key'])
  assert.deepEqual(await run(['COPY', 'd', 'e'], ['GET', 'e'], ['TTL', 'e'], ['COPY', 'd', 'e'], ['SET', 'd', 'new'], ['COPY', 'd', 'e', 'REPLACE'], ['GET', 'e'], ['COPY', 'nope', 'e'], ['COPY', 'd', 'd'], ['COPY', 'd', 'e', 'DB', 99], ['COPY', 'd', 'e', 'BAD']),
    [1, '1', 100, 0, 'OK', 1, 'new', 0, 'ERR:ERR source and destination objects are the same', 'ERR:ERR DB index is out of range', 'ERR:ERR syntax error'])
  assert.deepEqual(await run(['COPY', 'c', 'c', 'DB', 4], ['SELECT', 4], ['TYPE', 'c'], ['SELECT', 0], ['TYPE', 'c']), [1, 'OK', 'zset', 'OK', 'zset'])
})

test('layouts: this build reads the previous release\'s single-database layout as database 0, and refuses a newer layout', () => {
  // The previous release's state: one Store, exported without prefixes, every tag 0.
  const old = new Store({ segmentSize: 64 * 1024 })
  for (let i = 0; i < 100; i++) {
    const k = Buffer.from(`k${i}`)
    old.write(old.find(k, 0, k.length), k, 0, k.length, k, 0, k.length, i < 10 ? Date.now() + 60_000 : 0)
  }
  const st = old.exportState()
  assert.deepEqual(Object.keys(st.regions).sort(), ['index', 'seg.0'])
  const dbs = Databases.adopt(st.regions, { legacy: st.meta }, 16, {})
  const s = dbs.db(0)
  assert.equal(s.size, 100)
  assert.equal(s.expires, 10)
  assert.ok(s.find(Buffer.from('k42'), 0, 3) >= 0 && s.typeOf() === RecordType.string)
  assert.equal(dbs.db(5).size, 0)
  // The handoff checks the index region's declared layout before anything pauses: 0 (undeclared) and 2 are read.
  assert.deepEqual(LAYOUTS.index.accepts, [0, 2])
  // A meta that says another layout is refused, not guessed at.
  const mine = dbs.exportState()
  assert.equal(mine.meta.layout, 2)
  assert.throws(() => Databases.adopt(mine.regions, { dbs: { ...mine.meta, layout: 3 } }, 16, {}), (e: Error & { code?: string }) => e.code === 'ERR_PAGEGIFT_KV_LAYOUT' && /layout is 3/.test(e.message))
  assert.throws(() => Databases.adopt(mine.regions, {}, 16, {}), /cannot adopt/)
})

test('a live upgrade keeps every database\'s keys and types, and each client\'s selected database', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-dbs-'))
  const args = ['--port', '0', '--handoff', join(dir, 'h.sock'), '--segment-size', '1mb']
  let gen: KvProc = await startKv(args)
  try {
    const a = await KvClient.connect(gen.port)
    const b = await KvClient.connect(gen.port)
    const cmds: (string | number)[][] = []
    for (let db = 0; db < 16; db += 5) {
      cmds.push(['SELECT', db])
      for (let i = 0; i < 200; i++) cmds.push(['SET', `k${i}`, `db${db}:${i}`])
    }
    await a.pipeline(cmds)
    assert.equal(String(await a.call('SELECT', 10)), 'OK')
    assert.equal(String(await b.call('SELECT', 5)), 'OK')
    await b.call('SET', 'ttl', 'x', 'EX', '1000')
    gen = await upgradeKv(gen, args)
    assert.equal(String(await a.call('GET', 'k7')), 'db10:7', 'client a is still in db 10')
    assert.equal(String(await b.call('GET', 'k7')), 'db5:7', 'client b is still in db 5')
    assert.ok(Number(await b.call('TTL', 'ttl')) > 990)
    for (const db of [0, 5, 10, 15]) {
      await a.call('SELECT', db)
      assert.equal(Number(await a.call('DBSIZE')), db === 5 ? 201 : 200)
      assert.equal(String(await a.call('GET', 'k199')), `db${db}:199`)
    }
    assert.match(String(await a.call('INFO', 'keyspace')), /db0:keys=200.*\r\ndb5:keys=201,expires=1.*\r\ndb10:keys=200.*\r\ndb15:keys=200/)
    await a.close()
    await b.close()
  } finally {
    await gen.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})
