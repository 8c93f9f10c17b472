import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RecordType } from '../src/kv/segments.ts'
import { formatFloat } from '../src/kv/commands/strings-more.ts'
import { localKv } from './fixtures/kv-local.ts'

const kv = localKv()

const run = kv.run
const WRONGTYPE = 'ERR:WRONGTYPE Operation against a key holding the wrong kind of value'
const NOT_INT = 'ERR:ERR value is not an integer or out of range'

function putList (key: string): void {
  const s = kv.server.dbs.db(0)
  const k = Buffer.from(key)
  s.write(s.find(k, 0, k.length), k, 0, k.length, k, 0, k.length, 0, RecordType.list)
}

test('SETNX, SETEX, PSETEX, GETEX, GETDEL, MSETNX', async () => {
  await run(['FLUSHALL'])
  assert.deepEqual(await run(['SETNX', 'a', '1'], ['SETNX', 'a', '2'], ['GET', 'a'], ['SETEX', 'b', 100, 'v'], ['TTL', 'b'], ['PSETEX', 'p', 5000, 'v'], ['SETEX', 'b', 0, 'v'], ['SETEX', 'b', 'x', 'v'], ['PSETEX', 'b', -1, 'v']),
    [1, 0, '1', 'OK', 100, 'OK', "ERR:ERR invalid expire time in 'setex' command", NOT_INT, "ERR:ERR invalid expire time in 'psetex' command"])
  assert.ok(Number((await run(['PTTL', 'p']))[0]) > 4000)
  assert.deepEqual(await run(['GETEX', 'a', 'EX', 50], ['TTL', 'a'], ['GETEX', 'a', 'PERSIST'], ['TTL', 'a'], ['GETEX', 'nope'], ['GETEX', 'a', 'EX', 0], ['GETEX', 'a', 'EX', 1, 'PX', 1], ['GETEX', 'a', 'FOO'], ['GETEX', 'a', 'PXAT', 1], ['EXISTS', 'a']),
    ['1', 50, '1', -1, null, "ERR:ERR invalid expire time in 'getex' command", 'ERR:ERR syntax error', 'ERR:ERR syntax error', '1', 0])
  assert.deepEqual(await run(['SET', 'd', 'x'], ['GETDEL', 'd'], ['GETDEL', 'd'], ['EXISTS', 'd']), ['OK', 'x', null, 0])
  assert.deepEqual(await run(['MSETNX', 'm1', 'a', 'm2', 'b'], ['MSETNX', 'm2', 'c', 'm3', 'd'], ['MGET', 'm1', 'm2', 'm3'], ['MSETNX', 'm1'], ['MSETNX', 'x', '1', 'x', '2'], ['GET', 'x']),
    [1, 0, ['a', 'b', null], "ERR:ERR wrong number of arguments for 'msetnx' command", 1, '2'])
  putList('l')
  assert.deepEqual(await run(['GETEX', 'l'], ['GETDEL', 'l'], ['SETNX', 'l', 'x'], ['TYPE', 'l']), [WRONGTYPE, WRONGTYPE, 0, 'list'])
})

test('INCRBYFLOAT: Redis\'s formatting and errors', async () => {
  await run(['FLUSHALL'])
  assert.deepEqual(await run(['INCRBYFLOAT', 'f', '1'], ['INCRBYFLOAT', 'f', '0.25'], ['SET', 'g', '10.5'], ['INCRBYFLOAT', 'g', '0.1'], ['SET', 'h', '17179869184'], ['INCRBYFLOAT', 'h', '1.5'], ['INCRBYFLOAT', 'h', '5.0e3']),
    ['1', '1.25', 'OK', '10.6', 'OK', '17179869185.5', '17179874185.5'])
  assert.deepEqual(await run(['SET', 's', ' 11'], ['INCRBYFLOAT', 's', 1], ['INCRBYFLOAT', 'f', 'x'], ['INCRBYFLOAT', 'f', '+inf'], ['SET', 'z', '1'], ['INCRBYFLOAT', 'z', '-1'], ['GET', 'z']),
    ['OK', 'ERR:ERR value is not a valid float', 'ERR:ERR value is not a valid float', 'ERR:ERR increment would produce NaN or Infinity', 'OK', '0', '0'])
  putList('l')
  assert.deepEqual(await run(['INCRBYFLOAT', 'l', 1]), [WRONGTYPE])
  assert.equal(formatFloat(1e21), '1000000000000000000000')
  assert.equal(formatFloat(1.5e-7), '0.00000015')
  assert.equal(formatFloat(-0), '0')
})

test('GETRANGE/SUBSTR, SETRANGE, SETBIT/GETBIT, APPEND and OBJECT ENCODING', async () => {
  await run(['FLUSHALL'])
  assert.deepEqual(await run(['SET', 's', 'Hello World'], ['GETRANGE', 's', 0, 4], ['GETRANGE', 's', -5, -1], ['GETRANGE', 's', 5, 3], ['GETRANGE', 's', -1, -5], ['GETRANGE', 's', 0, 1000], ['SUBSTR', 's', 6, -1], ['GETRANGE', 'nope', 0, -1], ['GETRANGE', 's', 'a', 1]),
    ['OK', 'Hello', 'World', '', '', 'Hello World', 'World', '', NOT_INT])
  assert.deepEqual(await run(['SETRANGE', 's', 6, 'Redis'], ['GET', 's'], ['SETRANGE', 'n', 3, 'x'], ['GET', 'n'], ['SETRANGE', 'e', 0, ''], ['EXISTS', 'e'], ['SETRANGE', 's', -1, 'x'], ['SETRANGE', 's', 536870911, 'xx']),
    [11, 'Hello Redis', 4, '\0\0\0x', 0, 0, 'ERR:ERR offset is out of range', 'ERR:ERR string exceeds maximum allowed size (proto-max-bulk-len)'])
  assert.deepEqual(await run(['SETBIT', 'b', 7, 1], ['GET', 'b'], ['GETBIT', 'b', 7], ['GETBIT', 'b', 100], ['SETBIT', 'b', 7, 0], ['SETBIT', 'b', 1, 2], ['SETBIT', 'b', -1, 1], ['GETBIT', 'nope', 3]),
    [0, '\x01', 1, 0, 1, 'ERR:ERR bit is not an integer or out of range', 'ERR:ERR bit offset is not an integer or out of range', 0])
  // int for an integer, embstr up to 44 bytes, raw beyond; APPEND and SETRANGE make raw, as in Redis.
  assert.deepEqual(await run(['SET', 'i', '12'], ['OBJECT', 'ENCODING', 'i'], ['APPEND', 'i', '3'], ['OBJECT', 'ENCODING', 'i'], ['INCR', 'i'], ['OBJECT', 'ENCODING', 'i'], ['SET', 'e', 'x'.repeat(44)], ['OBJECT', 'ENCODING', 'e'], ['SET', 'r', 'x'.repeat(45)], ['OBJECT', 'ENCODING', 'r'], ['OBJECT', 'ENCODING', 'nope']),
    ['OK', 'int', 3, 'raw', 124, 'int', 'OK', 'embstr', 'OK', 'raw', null])
  assert.deepEqual(await run(['OBJECT', 'REFCOUNT', 'i'], ['OBJECT', 'IDLETIME', 'i'], ['OBJECT', 'NOPE', 'i']), [1, 0, "ERR:ERR unknown subcommand or wrong number of arguments for 'NOPE'. Try OBJECT HELP."])
  assert.match(String((await run(['OBJECT', 'FREQ', 'i']))[0]), /^ERR:ERR An LFU maxmemory policy is not selected/)
  putList('l')
  assert.deepEqual(await run(['GETRANGE', 'l', 0, 1], ['SETRANGE', 'l', 0, 'x'], ['SETBIT', 'l', 0, 1], ['GETBIT', 'l', 0]), [WRONGTYPE, WRONGTYPE, WRONGTYPE, WRONGTYPE])
})

test('LCS: the string, LEN, IDX with MINMATCHLEN and WITHMATCHLEN, as Redis answers them', async () => {
  await run(['FLUSHALL'], ['SET', 'a', 'ohmytext'], ['SET', 'b', 'mynewtext'])
  assert.deepEqual(await run(['LCS', 'a', 'b'], ['LCS', 'a', 'b', 'LEN'], ['LCS', 'a', 'nope'], ['LCS', 'a', 'b', 'LEN', 'IDX']),
    ['mytext', 6, '', 'ERR:ERR If you want both the length and indexes, please just use IDX.'])
  // Redis 7.2's own answers for these keys (its documentation's example).
  assert.deepEqual((await run(['LCS', 'a', 'b', 'IDX']))[0], ['matches', [[[4, 7], [5, 8]], [[2, 3], [0, 1]]], 'len', 6])
  assert.deepEqual((await run(['LCS', 'a', 'b', 'IDX', 'MINMATCHLEN', 4, 'WITHMATCHLEN']))[0], ['matches', [[[4, 7], [5, 8], 4]], 'len', 6])
})

test('EXPIRE NX/XX/GT/LT, EXPIRETIME, PEXPIRETIME, and Redis\'s overflow errors', async () => {
  await run(['FLUSHALL'], ['SET', 'k', 'v'], ['SET', 'p', 'v'])
  assert.deepEqual(await run(['EXPIRE', 'k', 100, 'XX'], ['EXPIRE', 'k', 100, 'NX'], ['EXPIRE', 'k', 200, 'NX'], ['EXPIRE', 'k', 50, 'GT'], ['EXPIRE', 'k', 200, 'GT'], ['EXPIRE', 'k', 300, 'LT'], ['EXPIRE', 'k', 150, 'LT'], ['TTL', 'k']),
    [0, 1, 0, 0, 1, 0, 1, 150])
  assert.deepEqual(await run(['EXPIRE', 'p', 100, 'GT'], ['EXPIRE', 'p', 100, 'LT'], ['EXPIRE', 'p', 1, 'NX', 'XX'], ['EXPIRE', 'p', 1, 'GT', 'LT'], ['EXPIRE', 'p', 1, 'FOO']),
    [0, 1, 'ERR:ERR NX and XX, GT or LT options at the same time are not compatible', 'ERR:ERR GT and LT options at the same time are not compatible', 'ERR:ERR Unsupported option FOO'])
  assert.deepEqual(await run(['PEXPIREAT', 'k', 33177117420000], ['EXPIRETIME', 'k'], ['PEXPIRETIME', 'k'], ['SET', 'n', 'v'], ['EXPIRETIME', 'n'], ['PEXPIRETIME', 'nope']),
    [1, 33177117420, 33177117420000, 'OK', -1, -2])
  assert.deepEqual(await run(['EXPIRE', 'k', '9223370399119966'], ['PEXPIRE', 'k', '9223372036854770000'], ['SET', 'x', 'v', 'EX', '10000000000000000'], ['EXPIRE', 'k', ''], ['PEXPIREAT', 'k', '9223372036854770000'], ['PEXPIREAT', 'k', '-9223372036854770000'], ['EXISTS', 'k']),
    ["ERR:ERR invalid expire time in 'expire' command", "ERR:ERR invalid expire time in 'pexpire' command", "ERR:ERR invalid expire time in 'set' command", NOT_INT, 1, 1, 0])
})

test('RANDOMKEY, TOUCH, TIME, FUNCTION FLUSH, COMMAND COUNT/INFO/LIST follow the table, unknown commands', async () => {
  await run(['FLUSHALL'])
  assert.deepEqual(await run(['RANDOMKEY'], ['SET', 'only', 'v'], ['RANDOMKEY'], ['TOUCH', 'only', 'nope', 'only'], ['FUNCTION', 'FLUSH']), [null, 'OK', 'only', 2, 'OK'])
  const [t] = await run(['TIME']) as [[string, string]]
  assert.ok(Math.abs(Number(t[0]) - Date.now() / 1000) < 5 && Number(t[1]) < 1e6)
  const [count, list] = await run(['COMMAND', 'COUNT'], ['COMMAND', 'LIST']) as [number, string[]]
  assert.equal(list.length, count)
  for (const name of ['incrbyfloat', 'getex', 'lcs', 'copy', 'swapdb', 'expiretime', 'object', 'setbit']) assert.ok(list.includes(name), name)
  assert.deepEqual((await run(['COMMAND', 'INFO', 'getrange', 'nosuch']))[0], [['getrange', 4, ['readonly'], 1, 1, 1, [], [], [], []], null])
  assert.deepEqual(await run(['NOSUCH', 'a', 'b'], ['EVAL', 'return 1', 0]), ["ERR:ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' ", "ERR:ERR unknown command 'EVAL', with args beginning with: 'return 1' '0' "])
  assert.match(String((await run(['INFO', 'cpu', 'commandstats']))[0]), /# Cpu\r\nused_cpu_sys:[\d.]+\r\n[\s\S]*# Commandstats\r\n[\s\S]*cmdstat_time:calls=1,rejected_calls=0/)
  assert.doesNotMatch(String((await run(['INFO']))[0]), /cmdstat_/)
})
