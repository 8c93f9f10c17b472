/**
 * DUMP and RESTORE on a real pagegift-kv process: Redis's payload format and errors, hostile payloads
 * (each answered with an error, the server alive and its memory bounded), and interop with the real
 * redis-server 7.0 both ways for every type.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { KvClient, RespError, type RespValue } from '../src/kv/client.ts'
import { Crc64 } from '../src/kv/rdb/crc64.ts'
import { T } from '../src/kv/rdb/format.ts'
import { canonical, dataset, fill, readAll, startRedisIn } from './fixtures/rdb-data.ts'
import { replyText as str } from './fixtures/kv-proc.ts'
import { childKv } from './fixtures/kv-local.ts'

const kv = childKv()

/** A payload around `body`: RDB version (2 bytes LE) and the CRC64 of all before it (8 bytes LE). */
function seal (body: Buffer, version = 10): Buffer {
  const v = Buffer.alloc(2)
  v.writeUInt16LE(version)
  const crc = new Crc64()
  crc.update(body)
  crc.update(v)
  return Buffer.concat([body, v, crc.bytes()])
}

const BAD = 'ERR Bad data format'
const WRONG = 'ERR DUMP payload version or checksum are wrong'

async function restoreError (payload: Buffer, key = 'hostile'): Promise<string> {
  const [r] = await kv.c.pipeline([['RESTORE', key, 0, payload, 'REPLACE']])
  assert.ok(r instanceof RespError, `RESTORE of ${payload.subarray(0, 24).toString('hex')}... gave ${String(str(r))}`)
  return r.message
}

test('DUMP gives Redis\'s payload: a string is type 0, its bytes, version 10 and the CRC64', async () => {
  await kv.c.call('SET', 's', 'hello')
  assert.deepEqual(await kv.c.call('DUMP', 's'), seal(Buffer.from('\x00\x05hello', 'latin1')))
  assert.equal(await kv.c.call('DUMP', 'nokey'), null)
  assert.deepEqual(str(await kv.c.call('COMMAND', 'INFO', 'dump', 'restore')), [['dump', 2, ['readonly'], 1, 1, 1, [], [], [], []],
    ['restore', -4, ['write', 'denyoom'], 1, 1, 1, [], [], [], []]])
})

test('RESTORE: a copy of every type, TTL, ABSTTL, REPLACE and Redis\'s errors', async () => {
  await kv.c.pipeline([['DEL', 'l', 'h', 'z', 'st'], ['RPUSH', 'l', 'a', '1', 'b'], ['HSET', 'h', 'f', 'v', 'n', '7'], ['ZADD', 'z', '1.5', 'a', '1e-322', 'b'], ['SADD', 'st', 'x', '2']])
  for (const k of ['l', 'h', 'z', 'st', 's']) {
    const p = await kv.c.call('DUMP', k) as Buffer
    assert.equal(str(await kv.c.call('RESTORE', `${k}:copy`, 0, p, 'REPLACE')), 'OK')
    assert.deepEqual(await contents(`${k}:copy`), await contents(k), k)
    // A hash's or a set's order is unspecified, as in Redis: two fields sharing a home slot are listed
    // in the order they were added, so only the ordered types must DUMP byte for byte the same.
    if (k !== 'h' && k !== 'st') assert.deepEqual(await kv.c.call('DUMP', `${k}:copy`), p, k)
  }
  assert.deepEqual(str(await kv.c.call('ZRANGE', 'z:copy', 0, -1, 'WITHSCORES')), ['b', '1e-322', 'a', '1.5'])
  const p = await kv.c.call('DUMP', 'l') as Buffer
  assert.equal(await restoreBusy(p), 'BUSYKEY Target key name already exists.')
  assert.equal(str(await kv.c.call('RESTORE', 'ttl', 5000, p)), 'OK')
  const pttl = Number(await kv.c.call('PTTL', 'ttl'))
  assert.ok(pttl > 4000 && pttl <= 5000, String(pttl))
  const at = Date.now() + 100_000
  assert.equal(str(await kv.c.call('RESTORE', 'abs', at, p, 'ABSTTL', 'IDLETIME', 10)), 'OK')
  assert.equal(Number(await kv.c.call('PEXPIRETIME', 'abs')), at)
  // A TTL already past: OK, and the key (replaced or new) does not exist.
  assert.equal(str(await kv.c.call('RESTORE', 'abs', 1, p, 'ABSTTL', 'REPLACE')), 'OK')
  assert.equal(await kv.c.call('EXISTS', 'abs'), 0)
  const errs = str(await kv.c.pipeline([
    ['RESTORE', 'n1', -1, p], ['RESTORE', 'n1', 'x', p], ['RESTORE', 'n1', 0, p, 'FREQ', 256], ['RESTORE', 'n1', 0, p, 'IDLETIME', -1],
    ['RESTORE', 'n1', 0, p, 'IDLETIME', 1, 'FREQ', 1], ['RESTORE', 'n1', 0, p, 'BOGUS'], ['RESTORE', 'n1', 0, 'short'], ['RESTORE', 'n1'], ['DUMP']
  ]))
  assert.deepEqual(errs, ['ERR:ERR Invalid TTL value, must be >= 0', 'ERR:ERR value is not an integer or out of range',
    'ERR:ERR Invalid FREQ value, must be >= 0 and <= 255', 'ERR:ERR Invalid IDLETIME value, must be >= 0', 'ERR:ERR syntax error',
    'ERR:ERR syntax error', `ERR:${WRONG}`, "ERR:ERR wrong number of arguments for 'restore' command", "ERR:ERR wrong number of arguments for 'dump' command"])
  assert.equal(await kv.c.call('EXISTS', 'n1'), 0)
})

/** The value of key `k` as its type's reply, with a hash's pairs and a set's members sorted. */
async function contents (k: string): Promise<unknown> {
  const type = str(await kv.c.call('TYPE', k))
  if (type === 'string') return [type, str(await kv.c.call('GET', k))]
  if (type === 'list') return [type, str(await kv.c.call('LRANGE', k, 0, -1))]
  if (type === 'zset') return [type, str(await kv.c.call('ZRANGE', k, 0, -1, 'WITHSCORES'))]
  if (type === 'set') return [type, (str(await kv.c.call('SMEMBERS', k)) as string[]).sort()]
  const flat = str(await kv.c.call('HGETALL', k)) as string[]
  return [type, flat.flatMap((f, i) => i % 2 === 0 ? [`${f}=${flat[i + 1]}`] : []).sort()]
}

async function restoreBusy (p: Buffer): Promise<string> {
  const [r] = await kv.c.pipeline([['RESTORE', 'l', 0, p]])
  return (r as RespError).message
}

test('the hash unit\'s case: a listpack hash with every integer width restores into a hashtable under a small limit', async () => {
  await kv.c.call('CONFIG', 'SET', 'hash-max-listpack-entries', 1_000_000)
  await kv.c.call('CONFIG', 'SET', 'hash-max-listpack-value', 1_000_000)
  const fields: Array<[string, string]> = [['i8', '127'], ['i16', '32767'], ['i32', '2147483647'], ['big', '9223372036854775808'], ['zero', '0'],
    ['s6', 'x'.repeat(31)], ['s14', 'x'.repeat(8191)], ['s32', 'x'.repeat(65535)]]
  await kv.c.pipeline([['DEL', 'k'], ['HSET', 'k', ...fields.flat()]])
  assert.equal(str(await kv.c.call('OBJECT', 'ENCODING', 'k')), 'listpack')
  const p = await kv.c.call('DUMP', 'k') as Buffer
  await kv.c.call('CONFIG', 'SET', 'hash-max-listpack-entries', 2)
  assert.equal(str(await kv.c.call('RESTORE', 'kk', 0, p, 'REPLACE')), 'OK')
  assert.equal(str(await kv.c.call('OBJECT', 'ENCODING', 'kk')), 'hashtable')
  const back = str(await kv.c.call('HGETALL', 'kk')) as string[]
  assert.deepEqual(new Map(back.flatMap((x, i) => i % 2 === 0 ? [[x, back[i + 1]]] : [])), new Map(fields))
  await kv.c.call('CONFIG', 'SET', 'hash-max-listpack-entries', 128)
  await kv.c.call('CONFIG', 'SET', 'hash-max-listpack-value', 64)
})

test('a hostile payload gets an error, never a crash or a hang: bad footers, every truncation, huge lengths, wrong types', { timeout: 120_000 }, async () => {
  await kv.c.pipeline([['DEL', 'src:l', 'src:h', 'src:z', 'src:s'], ['RPUSH', 'src:l', ...Array.from({ length: 300 }, (_, i) => `e${i}`)],
    ['HSET', 'src:h', 'a', '1', 'b', 'x'.repeat(100)], ['ZADD', 'src:z', 1, 'a', 2, 'b'], ['SADD', 'src:s', 1, 2, 3]])
  const good = await kv.c.call('DUMP', 'src:l') as Buffer
  const bad = Buffer.from(good)
  bad[3] ^= 1
  assert.equal(await restoreError(bad), WRONG)
  assert.equal(await restoreError(Buffer.concat([good.subarray(0, -10), seal(Buffer.alloc(0), 12).subarray(0, 2), good.subarray(-8)])), WRONG)
  assert.equal(await restoreError(seal(good.subarray(0, -10), 12)), WRONG)
  // Every prefix of every type's body, sealed with a good footer: the checksum passes, the body is cut.
  for (const k of ['src:l', 'src:h', 'src:z', 'src:s']) {
    const body = (await kv.c.call('DUMP', k) as Buffer).subarray(0, -10)
    const cmds = []
    for (let n = 0; n < body.length; n += Math.max(1, body.length >> 6)) cmds.push(['RESTORE', 'cut', 0, seal(body.subarray(0, n)), 'REPLACE'])
    for (const r of await kv.c.pipeline(cmds)) assert.deepEqual(str(r), `ERR:${BAD}`, k)
  }
  const huge = [
    Buffer.from([T.STRING, 0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // a 2^63 byte string
    Buffer.from([T.STRING, 0x80, 0xff, 0xff, 0xff, 0xf0, 0x61]), // 4 GiB claimed, 1 byte there
    Buffer.from([T.STRING, 0xc3, 0x01, 0x80, 0x1f, 0xff, 0xff, 0xff, 0x00]), // LZF: 512 MiB from 1 byte
    Buffer.from([T.LIST, 0x80, 0xff, 0xff, 0xff, 0xff, 0x00]), // 4 billion elements
    Buffer.from([T.HASH, 0x81, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x61]),
    Buffer.from([T.ZSET_2, 0x02, 0x01, 0x61, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 0x01, 0x62]), // a NaN score, then cut
    Buffer.from([T.LIST_QUICKLIST_2, 0x01, 0x07, 0x00]), // a bad container
    Buffer.from([T.HASH_LISTPACK, 0x06, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x00]), // a listpack claiming 2 GiB
    Buffer.from([T.SET_INTSET, 0x08, 0x08, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff]), // an intset of 4 billion
    Buffer.from([T.SET, 0x02, 0x01, 0x61, 0x01, 0x61]), // a duplicate member
    Buffer.from([T.HASH, 0x00]), // empty
    Buffer.from([T.STREAM_LISTPACKS, 0x00]), Buffer.from([99, 0x00]), Buffer.from([0xff]), Buffer.alloc(0),
    Buffer.from([T.STRING, 0x01, 0x61, 0x62]) // trailing bytes
  ]
  for (const body of huge) assert.equal(await restoreError(seal(body)), BAD, body.toString('hex'))
  assert.equal(await kv.c.call('EXISTS', 'hostile', 'cut'), 0)
  assert.equal(str(await kv.c.call('PING')), 'PONG')
})

test('random damage to valid payloads of every type (resealed, so the body is checked): each gets OK or an error', { timeout: 120_000 }, async () => {
  await kv.c.pipeline([['DEL', 'f:l', 'f:h', 'f:z', 'f:s', 'f:big'], ['RPUSH', 'f:l', 'a', '12', 'x'.repeat(40)], ['HSET', 'f:h', 'f', 'v', 'n', '-3'],
    ['ZADD', 'f:z', 1, 'a', '-inf', 'b', 2.5, 'c'], ['SADD', 'f:s', 5, 600, 70000], ['SET', 'f:big', 'y'.repeat(300)]])
  let seed = 12345
  const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n }
  for (const k of ['f:l', 'f:h', 'f:z', 'f:s', 'f:big']) {
    const body = (await kv.c.call('DUMP', k) as Buffer).subarray(0, -10)
    const cmds = []
    for (let i = 0; i < 400; i++) {
      const b = Buffer.from(body)
      for (let flips = 1 + rand(3); flips > 0; flips--) b[rand(b.length)] = rand(256)
      cmds.push(['RESTORE', 'fuzzed', 0, seal(b), 'REPLACE'])
    }
    for (const r of await kv.c.pipeline(cmds)) assert.ok(str(r) === 'OK' || str(r) === `ERR:${BAD}`, `${k}: ${String(str(r))}`)
  }
  assert.equal(str(await kv.c.call('PING')), 'PONG')
})

test('a payload that would decode past RESTORE\'s memory budget is refused before it is decoded', { timeout: 60_000 }, async () => {
  // A valid listpack of 3 million 1-byte integers (2 bytes each): as Buffers they would take far more than 256 MiB.
  const entries = 3 * 1024 * 1024
  const n = 6 + 2 * entries + 1
  const lp = Buffer.alloc(n, 0x01)
  lp.writeUInt32LE(n, 0)
  lp.writeUInt16LE(0xffff, 4)
  lp[n - 1] = 0xff
  const len = Buffer.from([T.LIST_QUICKLIST_2, 0x01, 0x02, 0x80, 0, 0, 0, 0])
  len.writeUInt32BE(n, 4)
  const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readStatus(kv.proc.pid))?.[1] ?? 0) * 1024
  const before = rss()
  assert.match(await restoreError(seal(Buffer.concat([len, lp]))), /^ERR DUMP payload decodes to more than 256 MiB/)
  assert.ok(rss() - before < 200 * 1024 * 1024, `rss grew by ${rss() - before}`)
})

function readStatus (pid: number): string {
  return readFileSync(`/proc/${pid}/status`, 'utf8')
}

async function dumpAll (from: KvClient, to: KvClient, keys: ReturnType<typeof dataset>): Promise<void> {
  for (const k of keys) {
    await from.call('SELECT', k.db)
    await to.call('SELECT', k.db)
    const p = await from.call('DUMP', k.key) as Buffer
    const at = Number(await from.call('PEXPIRETIME', k.key))
    const r: RespValue = await to.call('RESTORE', k.key, at > 0 ? at : 0, p, 'ABSTTL', 'REPLACE')
    assert.equal(str(r), 'OK', k.key.toString())
  }
  await from.call('SELECT', 0)
  await to.call('SELECT', 0)
}

for (const direction of ['redis-server → pagegift-kv', 'pagegift-kv → redis-server']) {
  test(`DUMP and RESTORE ${direction}: every type and encoding, every key, value and TTL intact`, { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kv-dump-'))
    const redis = await startRedisIn(dir)
    const rc = await KvClient.connect(redis.port)
    try {
      const data = dataset()
      const [from, to] = direction.startsWith('redis') ? [rc, kv.c] : [kv.c, rc]
      await kv.c.call('FLUSHALL')
      await fill(from, data)
      await dumpAll(from, to, data)
      assert.deepEqual(canonical(await readAll(to)), canonical(data))
      if (from === rc) {
        // Byte for byte where both choose the same encoding (LZF output, hash field order and zset score text differ).
        for (const k of ['d0:str', 'd0:int', 'd0:noise', 'd0:set:int', 'd0:list:small']) assert.deepEqual(await kv.c.call('DUMP', k), await rc.call('DUMP', k), k)
      }
    } finally {
      await rc.close()
      await redis.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
}
