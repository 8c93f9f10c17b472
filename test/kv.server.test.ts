import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { rawExchange, replyText as str } from './fixtures/kv-proc.ts'
import { localKv } from './fixtures/kv-local.ts'

const kv = localKv()

const run = kv.run

/** A raw socket that collects everything the kv.server sends until it closes or `ms` pass. */
const raw = async (send: (s: net.Socket) => Promise<void>, ms = 300): Promise<{ text: string, closed: boolean }> => await rawExchange(kv.port, send, ms)

test('strings: SET options, GET, GETSET, APPEND, STRLEN, MSET, MGET, INCR family', async () => {
  await run(['FLUSHALL'])
  assert.deepEqual(await run(['SET', 'a', '1'], ['GET', 'a'], ['SET', 'a', '2', 'NX'], ['SET', 'b', '2', 'XX'], ['SET', 'a', '3', 'XX', 'GET'], ['GET', 'a']),
    ['OK', '1', null, null, '1', '3'])
  assert.deepEqual(await run(['GETSET', 'a', 'x'], ['APPEND', 'a', 'yz'], ['STRLEN', 'a'], ['STRLEN', 'nope'], ['APPEND', 'n', 'q']), ['3', 3, 3, 0, 1])
  assert.deepEqual(await run(['MSET', 'k1', 'v1', 'k2', 'v2'], ['MGET', 'k1', 'zz', 'k2'], ['MSET', 'k1']), ['OK', ['v1', null, 'v2'], "ERR:ERR wrong number of arguments for 'mset' command"])
  assert.deepEqual(await run(['INCR', 'i'], ['INCRBY', 'i', 41], ['DECR', 'i'], ['DECRBY', 'i', '-10'], ['INCR', 'a'], ['SET', 'big', '9223372036854775807'], ['INCR', 'big'], ['INCRBY', 'i', '1.5']),
    [1, 42, 41, 51, 'ERR:ERR value is not an integer or out of range', 'OK', 'ERR:ERR increment or decrement would overflow', 'ERR:ERR value is not an integer or out of range'])
  assert.deepEqual(await run(['SET', 'a', 'b', 'EX', 0], ['SET', 'a', 'b', 'NX', 'XX'], ['SET', 'a', 'b', 'EX', 'x']),
    ["ERR:ERR invalid expire time in 'set' command", 'ERR:ERR syntax error', 'ERR:ERR value is not an integer or out of range'])
})

test('expiry: EX/PX, EXPIRE, PEXPIRE, TTL, PTTL, PERSIST, and keys really expire', async () => {
  await run(['FLUSHALL'])
  assert.deepEqual(await run(['SET', 'e', 'v', 'EX', 100], ['TTL', 'e'], ['PERSIST', 'e'], ['TTL', 'e'], ['TTL', 'none'], ['EXPIRE', 'e', 50], ['TTL', 'e'], ['EXPIRE', 'none', 5]),
    ['OK', 100, 1, -1, -2, 1, 50, 0])
  const [pttl] = await run(['PEXPIRE', 'e', 30], ['PTTL', 'e'])
  assert.equal(pttl, 1)
  await run(['SET', 'p', 'v', 'PX', 20], ['SET', 'gone', 'v'], ['EXPIRE', 'gone', -1])
  await new Promise((resolve) => setTimeout(resolve, 60))
  assert.deepEqual(await run(['GET', 'e'], ['GET', 'p'], ['EXISTS', 'gone'], ['DBSIZE']), [null, null, 0, 0])
})

test('keyspace: DEL, EXISTS, TYPE, KEYS, SCAN, DBSIZE, SELECT', async () => {
  await run(['FLUSHDB'])
  const cmds: string[][] = []
  for (let i = 0; i < 500; i++) cmds.push(['SET', `user:${i}`, `${i}`])
  cmds.push(['SET', 'other', 'x'])
  await kv.c.pipeline(cmds)
  assert.deepEqual(await run(['DBSIZE'], ['EXISTS', 'user:1', 'user:2', 'nope'], ['TYPE', 'other'], ['TYPE', 'nope'], ['DEL', 'other', 'nope']), [501, 2, 'string', 'none', 1])
  assert.deepEqual(((await run(['KEYS', 'user:1?']))[0] as string[]).sort(), Array.from({ length: 10 }, (_, i) => `user:1${i}`).sort())
  const seen = new Set<string>()
  let cursor = '0'
  do {
    const [r] = await run(['SCAN', cursor, 'MATCH', 'user:*', 'COUNT', 50]) as [[string, string[]]]
    cursor = r[0]
    for (const k of r[1]) seen.add(k)
  } while (cursor !== '0')
  assert.equal(seen.size, 500)
  assert.deepEqual(await run(['SELECT', 0], ['SELECT', 16], ['SCAN', 'x']), ['OK', 'ERR:ERR DB index is out of range', 'ERR:ERR invalid cursor'])
})

test('server commands and errors: PING, ECHO, INFO, CONFIG GET, COMMAND, CLIENT, unknown, arity', async () => {
  const r = await run(['PING'], ['PING', 'hi'], ['ECHO', 'e'], ['CONFIG', 'GET', 'save'], ['COMMAND', 'COUNT'], ['CLIENT', 'SETNAME', 'me'], ['CLIENT', 'GETNAME'], ['NOPE', 'a'], ['GET'])
  assert.deepEqual(r.slice(0, 4), ['PONG', 'hi', 'e', ['save', '']])
  assert.ok((r[4] as number) >= 30)
  assert.deepEqual(r.slice(5), ['OK', 'me', "ERR:ERR unknown command 'NOPE', with args beginning with: 'a' ", "ERR:ERR wrong number of arguments for 'get' command"])
  const [info] = await run(['INFO'])
  for (const s of ['# Server', '# Memory', '# Keyspace', '# Pagegift', 'generation:1', 'used_memory:']) assert.ok((info as string).includes(s), s)
})

test('a long pipeline in one write gets every reply in order', async () => {
  const cmds: string[][] = []
  for (let i = 0; i < 5000; i++) cmds.push(i % 2 === 0 ? ['SET', `p${i}`, `v${i}`] : ['GET', `p${i - 1}`])
  const r = await kv.c.pipeline(cmds)
  for (let i = 1; i < 5000; i += 2) assert.equal(String(r[i]), `v${i - 1}`)
})

test('malformed RESP closes only that client; a half command that stalls blocks no one', async () => {
  const bad = await raw(async (s) => { s.write('*1\r\n$999999999999\r\n') })
  assert.match(bad.text, /^-ERR Protocol error: invalid bulk length\r\n$/)
  assert.ok(bad.closed)
  const stall = net.connect(kv.port, '127.0.0.1')
  await new Promise((resolve) => stall.once('connect', resolve))
  let got = ''
  stall.on('data', (d) => { got += d.toString() })
  stall.write('*3\r\n$3\r\nSET\r\n$5\r\nstall\r\n$4\r\nab')
  assert.deepEqual(await run(['SET', 'other', 'ok'], ['GET', 'other']), ['OK', 'ok'])
  stall.write('cd\r\n')
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(got, '+OK\r\n')
  stall.destroy()
  assert.deepEqual(await run(['GET', 'stall']), ['abcd'])
})

test('a 4 MiB value sent in small pieces arrives whole', async () => {
  const big = Buffer.alloc(4 * 1024 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 255
  const { text } = await raw(async (s) => {
    const msg = Buffer.concat([Buffer.from(`*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$${big.length}\r\n`), big, Buffer.from('\r\n')])
    for (let i = 0; i < msg.length; i += 65536) s.write(msg.subarray(i, i + 65536))
  })
  assert.equal(text, '+OK\r\n')
  const v = await kv.c.call('GET', 'big')
  assert.ok(Buffer.isBuffer(v) && v.equals(big))
})

test('maxmemory: writes past it get the OOM error, reads still work', async () => {
  await run(['FLUSHALL'], ['CONFIG', 'SET', 'maxmemory', '300kb'])
  const v = 'x'.repeat(1000)
  const cmds: string[][] = []
  for (let i = 0; i < 400; i++) cmds.push(['SET', `m${i}`, v])
  const r = (await kv.c.pipeline(cmds)).map(str)
  const oom = r.filter((x) => x === "ERR:OOM command not allowed when used memory > 'maxmemory'.").length
  assert.ok(oom > 50 && r.length - oom > 200, `${oom} OOM`)
  assert.deepEqual(await run(['GET', 'm0'], ['CONFIG', 'SET', 'maxmemory', '0']), [v, 'OK'])
})

test('QUIT replies OK then closes', async () => {
  const { text, closed } = await raw(async (s) => { s.write('PING\r\nQUIT\r\nPING\r\n') })
  assert.equal(text, '+PONG\r\n+OK\r\n')
  assert.ok(closed)
})
