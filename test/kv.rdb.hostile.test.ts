/**
 * Hostile and old RDB files: truncation at every byte, flipped bytes, bad type bytes, lengths that
 * claim more than the file holds. Each gives an RdbError with a code: no other exception, no partial
 * load that looks whole, no fd left open, no allocation sized by a lie. Also the encodings Redis < 7
 * wrote (ziplists, quicklist 1, text zset scores, second expiries), built by hand.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { Crc64 } from '../src/kv/rdb/crc64.ts'
import { RdbReader } from '../src/kv/rdb/reader.ts'
import { bufferSource, fileSource } from '../src/kv/rdb/input.ts'
import type { RdbKey, RdbValue } from '../src/kv/rdb/format.ts'
import { canonical, dataset, writeRdb } from './fixtures/rdb-data.ts'

function parse (file: Buffer): RdbKey[] {
  const r = new RdbReader(bufferSource(file))
  const keys: RdbKey[] = []
  for (let k = r.next(); k !== null; k = r.next()) keys.push(k)
  return keys
}

/** Runs `f` and returns the RdbError code it threw; fails the test on success or on any other error. */
function codeOf (f: () => unknown): string {
  try {
    f()
  } catch (err) {
    const code = (err as { code?: string }).code ?? ''
    assert.ok(err instanceof Error && code.startsWith('ERR_RDB_'), `not an RdbError: ${String(err)}`)
    return code
  }
  assert.fail('parsed without an error')
}

function small (): RdbKey[] {
  const b = (s: string): Buffer => Buffer.from(s)
  const v: Array<[string, RdbValue, number?]> = [
    ['s', { type: 'string', value: b('hello') }, Date.now() + 1e9],
    ['n', { type: 'string', value: b('-123456') }],
    ['z', { type: 'string', value: Buffer.alloc(300, 'lzf') }],
    ['l', { type: 'list', value: [b('a'), b('1'), Buffer.alloc(100, 'q')] }],
    ['si', { type: 'set', value: [b('1'), b('2'), b('99999')] }],
    ['ss', { type: 'set', value: Array.from({ length: 600 }, (_, i) => b(`m${i}`)) }],
    ['zs', { type: 'zset', value: [[b('a'), 1.5], [b('b'), -Infinity]] }],
    ['zb', { type: 'zset', value: Array.from({ length: 130 }, (_, i) => [b(`z${i}`), i] as [Buffer, number]) }],
    ['h', { type: 'hash', value: [[b('f'), b('v')], [b('g'), b('7')]] }],
    ['hb', { type: 'hash', value: [[b('f'), Buffer.alloc(80, 'h')]] }]
  ]
  return v.map(([k, value, at], i) => ({ db: i % 3, key: b(k), value, expireAt: at ?? 0 }))
}

test('truncated at every byte: ERR_RDB_TRUNCATED (or BAD_MAGIC inside the header), never a short load', () => {
  const file = writeRdb(small())
  assert.equal(parse(file).length, 10)
  const seen = new Set<string>()
  for (let n = 0; n < file.length; n++) {
    const code = codeOf(() => parse(file.subarray(0, n)))
    assert.ok(code === 'ERR_RDB_TRUNCATED' || (n < 9 && code === 'ERR_RDB_BAD_MAGIC'), `cut at ${n}: ${code}`)
    seen.add(code)
  }
  assert.deepEqual([...seen].sort(), ['ERR_RDB_BAD_MAGIC', 'ERR_RDB_TRUNCATED'])
  // The big dataset, every 997 bytes, from a file (the reader's window is refilled across cuts).
  const big = writeRdb(dataset())
  const dir = mkdtempSync(join(tmpdir(), 'kv-rdb-h-'))
  const fds = readdirSync('/proc/self/fd').length
  try {
    for (let n = 9; n < big.length; n += 997) {
      writeFileSync(join(dir, 'cut.rdb'), big.subarray(0, n))
      const r = new RdbReader(fileSource(join(dir, 'cut.rdb')))
      assert.equal(codeOf(() => { try { for (let k = r.next(); k !== null; k = r.next()); } finally { r.close() } }), 'ERR_RDB_TRUNCATED')
    }
    writeFileSync(join(dir, 'cut.rdb'), 'REDIS')
    assert.equal(codeOf(() => new RdbReader(fileSource(join(dir, 'cut.rdb')))), 'ERR_RDB_BAD_MAGIC')
    assert.equal(readdirSync('/proc/self/fd').length, fds, 'an fd was left open')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a flipped byte anywhere is an RdbError (checksum, type, length or structure), never another exception', () => {
  const file = writeRdb(small())
  const codes = new Set<string>()
  for (let i = 9; i < file.length; i++) {
    for (const x of [0x01, 0x80, 0xff]) {
      const bad = Buffer.from(file)
      bad[i] ^= x
      codes.add(codeOf(() => parse(bad)))
    }
  }
  assert.ok(codes.has('ERR_RDB_CHECKSUM'))
  assert.ok(codes.has('ERR_RDB_CORRUPT'))
  assert.ok(codes.has('ERR_RDB_BAD_TYPE'))
  // Without a checksum (rdbchecksum no writes zeros), structure checks are all that stand: still no crash.
  const unsummed = Buffer.from(file)
  unsummed.fill(0, unsummed.length - 8)
  for (let i = 9; i < file.length - 9; i++) {
    const bad = Buffer.from(unsummed)
    bad[i] ^= 0xa5
    try { parse(bad) } catch (err) { assert.match((err as { code?: string }).code ?? String(err), /^ERR_RDB_/) }
  }
})

/** Builds an RDB by hand: header, body bytes, EOF and a correct CRC64. */
function rdb (version: number, ...body: Array<number | Buffer | string>): Buffer {
  const parts = [Buffer.from(`REDIS${String(version).padStart(4, '0')}`), ...body.map((x) => typeof x === 'number' ? Buffer.from([x]) : Buffer.from(x)), Buffer.from([0xff])]
  const b = Buffer.concat(parts)
  const c = new Crc64()
  c.update(b)
  return Buffer.concat([b, c.bytes()])
}
const str = (s: string | Buffer): Buffer => Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s)])

test('lengths that claim more than the file: TRUNCATED before any allocation of that size; bad opcodes and types named', () => {
  const before = process.memoryUsage().arrayBuffers
  const huge64 = Buffer.from([0x81, 0, 0, 0x10, 0, 0, 0, 0, 0])
  assert.equal(codeOf(() => parse(rdb(10, 0, str('k'), huge64))), 'ERR_RDB_CORRUPT')
  assert.equal(codeOf(() => parse(rdb(10, 0, str('k'), Buffer.from([0x80, 0x06, 0, 0, 0])))), 'ERR_RDB_TRUNCATED')
  assert.equal(codeOf(() => parse(rdb(10, 2, str('k'), Buffer.from([0x80, 0xff, 0xff, 0xff, 0xff])))), 'ERR_RDB_TRUNCATED')
  assert.equal(codeOf(() => parse(rdb(10, 0, str('k'), Buffer.from([0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])))), 'ERR_RDB_CORRUPT')
  // An LZF string that claims 400 MB from 3 bytes.
  assert.equal(codeOf(() => parse(rdb(10, 0, str('k'), 0xc3, 3, Buffer.from([0x80, 0x18, 0, 0, 0]), Buffer.from([0, 0x61, 0])))), 'ERR_RDB_CORRUPT')
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024, 'a lying length was allocated')
  assert.equal(codeOf(() => parse(rdb(10, 99, str('k'), str('v')))), 'ERR_RDB_BAD_TYPE')
  assert.match(String((() => { try { parse(rdb(10, 15, str('k'))) } catch (e) { return (e as Error).message } })()), /stream/)
  assert.equal(codeOf(() => parse(rdb(10, 245, str('lib')))), 'ERR_RDB_UNSUPPORTED')
  assert.equal(codeOf(() => parse(rdb(12))), 'ERR_RDB_VERSION')
  assert.equal(codeOf(() => parse(Buffer.concat([rdb(10), Buffer.from('x')]))), 'ERR_RDB_TRAILING')
  assert.equal(codeOf(() => parse(Buffer.from('RUBIS0010'))), 'ERR_RDB_BAD_MAGIC')
  assert.equal(codeOf(() => parse(rdb(10, 2, str('k'), 2, str('a'), str('a')))), 'ERR_RDB_CORRUPT')
  assert.equal(codeOf(() => parse(rdb(10, 5, str('k'), 1, str('a'), Buffer.from([0, 0, 0, 0, 0, 0, 0xf8, 0x7f])))), 'ERR_RDB_CORRUPT')
})

test('the encodings of older Redis versions: ziplist lists, quicklist 1, ziplist zsets and hashes, text scores, second expiries', () => {
  const zl = (items: string[]): Buffer => {
    const entries = items.map((s, i) => Buffer.concat([Buffer.from([i === 0 ? 0 : 2 + Buffer.byteLength(items[i - 1])]), str(s)]))
    const body = Buffer.concat(entries)
    const z = Buffer.alloc(11 + body.length)
    z.writeUInt32LE(z.length, 0)
    z.writeUInt16LE(items.length, 8)
    body.copy(z, 10)
    z[z.length - 1] = 0xff
    return z
  }
  const blob = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0x40 | (b.length >> 8), b.length & 0xff]), b])
  const file = rdb(6,
    0xfe, 3,
    0xfd, Buffer.from([0x10, 0x27, 0, 0]), 10, str('zl'), blob(zl(['a', 'b', 'c'])),
    14, str('ql'), 2, blob(zl(['1', '2'])), blob(zl(['3'])),
    12, str('zz'), blob(zl(['m', '1.5', 'n', 'inf'])),
    13, str('hz'), blob(zl(['f', 'v'])),
    3, str('oldz'), 2, str('p'), 3, '2.5', str('q'), 255,
    0, str('i8'), 0xc0, 0x85, 0, str('i32'), 0xc2, Buffer.from([0xff, 0xff, 0xff, 0x7f]))
  const keys = parse(file)
  const v = (value: RdbValue): RdbValue => value
  assert.deepEqual(canonical(keys), canonical([
    { db: 3, key: Buffer.from('zl'), expireAt: 10_000_000, value: v({ type: 'list', value: ['a', 'b', 'c'].map((s) => Buffer.from(s)) }) },
    { db: 3, key: Buffer.from('ql'), expireAt: 0, value: v({ type: 'list', value: ['1', '2', '3'].map((s) => Buffer.from(s)) }) },
    { db: 3, key: Buffer.from('zz'), expireAt: 0, value: v({ type: 'zset', value: [[Buffer.from('m'), 1.5], [Buffer.from('n'), Infinity]] }) },
    { db: 3, key: Buffer.from('hz'), expireAt: 0, value: v({ type: 'hash', value: [[Buffer.from('f'), Buffer.from('v')]] }) },
    { db: 3, key: Buffer.from('oldz'), expireAt: 0, value: v({ type: 'zset', value: [[Buffer.from('p'), 2.5], [Buffer.from('q'), -Infinity]] }) },
    { db: 3, key: Buffer.from('i8'), expireAt: 0, value: v({ type: 'string', value: Buffer.from('-123') }) },
    { db: 3, key: Buffer.from('i32'), expireAt: 0, value: v({ type: 'string', value: Buffer.from('2147483647') }) }
  ]))
})
