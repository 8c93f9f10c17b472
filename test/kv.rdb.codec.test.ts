/** The RDB codec's parts: CRC64, LZF, ziplist, listpack and intset, and strict refusals of bad blobs. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Crc64 } from '../src/kv/rdb/crc64.ts'
import { lzfCompress, lzfDecompress } from '../src/kv/rdb/lzf.ts'
import { canonicalInt, readIntset, readListpack, readZiplist, writeIntset, writeListpack } from '../src/kv/rdb/packed.ts'

const strs = (xs: Buffer[]): string[] => xs.map((x) => x.toString('latin1'))

test('CRC64 is Redis\'s (Jones, reflected): the check value of "123456789", in one piece or many', () => {
  const whole = new Crc64()
  whole.update(Buffer.from('123456789'))
  assert.equal(whole.hex(), 'e9c6d914c4b8d9ca')
  const data = randomBytes(10_000)
  const a = new Crc64()
  a.update(data)
  const b = new Crc64()
  for (let i = 0; i < data.length; i += 7) b.update(data, i, Math.min(data.length, i + 7))
  assert.equal(a.hex(), b.hex())
})

test('LZF round-trips text and noise, and refuses output that overflows or references before the start', () => {
  for (let t = 0; t < 300; t++) {
    const n = 4 + Math.floor(Math.random() * 5000)
    const src = Buffer.alloc(n)
    const alphabet = 1 + (t % 30)
    for (let i = 0; i < n; i++) src[i] = t % 5 === 0 ? Math.floor(Math.random() * 256) : 97 + Math.floor(Math.random() * alphabet)
    const z = lzfCompress(src)
    if (z === null) continue
    assert.ok(z.length < n)
    assert.deepEqual(lzfDecompress(z, 0, z.length, n), src)
  }
  const z = lzfCompress(Buffer.alloc(1000, 'ab')) as Buffer
  assert.throws(() => lzfDecompress(z, 0, z.length, 999), { code: 'ERR_RDB_CORRUPT' })
  assert.throws(() => lzfDecompress(z, 0, z.length, 1001), { code: 'ERR_RDB_CORRUPT' })
  // A back reference as the first thing: nothing to refer to.
  assert.throws(() => lzfDecompress(Buffer.from([0x20, 0x00]), 0, 2, 3), { code: 'ERR_RDB_CORRUPT' })
  assert.throws(() => lzfDecompress(Buffer.from([0x05, 0x61]), 0, 2, 6), { code: 'ERR_RDB_CORRUPT' })
})

/** A ziplist as Redis < 7 wrote them (prevlen, then the encoding). */
function ziplist (items: Array<string | number | bigint>): Buffer {
  const entries: Buffer[] = []
  let prev = 0
  for (const it of items) {
    let body: Buffer
    if (typeof it === 'string') {
      const s = Buffer.from(it)
      body = s.length < 64 ? Buffer.concat([Buffer.from([s.length]), s]) : s.length < 16384 ? Buffer.concat([Buffer.from([0x40 | (s.length >> 8), s.length & 0xff]), s]) : Buffer.concat([Buffer.from([0x80, 0, 0, 0, 0]), s])
      if (s.length >= 16384) body.writeUInt32BE(s.length, 1)
    } else {
      const x = BigInt(it)
      if (x >= 0n && x <= 12n) body = Buffer.from([0xf1 + Number(x)])
      else if (x >= -128n && x <= 127n) body = Buffer.from([0xfe, Number(x) & 0xff])
      else if (x >= -32768n && x <= 32767n) { body = Buffer.alloc(3); body[0] = 0xc0; body.writeInt16LE(Number(x), 1) } else if (x >= -(2n ** 23n) && x < 2n ** 23n) { body = Buffer.alloc(4); body[0] = 0xf0; body.writeIntLE(Number(x), 1, 3) } else if (x >= -(2n ** 31n) && x < 2n ** 31n) { body = Buffer.alloc(5); body[0] = 0xd0; body.writeInt32LE(Number(x), 1) } else { body = Buffer.alloc(9); body[0] = 0xe0; body.writeBigInt64LE(x, 1) }
    }
    const pl = prev < 254 ? Buffer.from([prev]) : Buffer.from([0xfe, prev & 0xff, (prev >> 8) & 0xff, (prev >> 16) & 0xff, prev >>> 24])
    const e = Buffer.concat([pl, body])
    entries.push(e)
    prev = e.length
  }
  const body = Buffer.concat(entries)
  const z = Buffer.alloc(10 + body.length + 1)
  z.writeUInt32LE(z.length, 0)
  z.writeUInt32LE(10 + body.length - prev, 4)
  z.writeUInt16LE(items.length, 8)
  body.copy(z, 10)
  z[z.length - 1] = 0xff
  return z
}

test('ziplists decode every entry encoding: short, 14-bit and 32-bit strings, immediates, 8/16/24/32/64-bit ints', () => {
  const items = ['a', 'x'.repeat(300), 'y'.repeat(20000), 0, 12, 13, -1, 200, -30000, 8000000, -2000000000, 2n ** 62n, -(2n ** 63n), '']
  assert.deepEqual(strs(readZiplist(ziplist(items))), items.map(String))
  const z = ziplist(['a', 'b'])
  z.writeUInt16LE(3, 8)
  assert.throws(() => readZiplist(z), { code: 'ERR_RDB_CORRUPT', message: /says 3 entries/ })
  const cut = ziplist(['hello'])
  assert.throws(() => readZiplist(Buffer.concat([cut.subarray(0, 12), Buffer.from([0xff])])), { code: 'ERR_RDB_CORRUPT' })
  const bad = ziplist([5])
  bad[11] = 0xff
  assert.throws(() => readZiplist(bad), { code: 'ERR_RDB_CORRUPT' })
})

test('listpacks round-trip strings of every length class and integers of every width; Redis\'s integer canon is kept', () => {
  const items = ['', 'a', 'x'.repeat(63), 'y'.repeat(64), 'z'.repeat(4095), 'w'.repeat(4096), 'v'.repeat(20000),
    '0', '127', '128', '-1', '-4096', '4095', '-4097', '32767', '-32769', '8388607', '-8388609', '2147483647', '-2147483649',
    '9223372036854775807', '-9223372036854775808', '9223372036854775808', '007', '-0', '+1', '1.5'].map((s) => Buffer.from(s))
  const lp = writeListpack(items)
  assert.deepEqual(strs(readListpack(lp)), strs(items))
  assert.equal(canonicalInt(Buffer.from('-0')), null)
  assert.equal(canonicalInt(Buffer.from('12')), 12n)
  const cut = Buffer.from(lp.subarray(0, 40))
  cut.writeUInt32LE(40, 0)
  assert.throws(() => readListpack(cut), { code: 'ERR_RDB_CORRUPT' })
  const badBack = writeListpack([Buffer.from('abc')])
  badBack[badBack.length - 2] = 9
  assert.throws(() => readListpack(badBack), { code: 'ERR_RDB_CORRUPT', message: /back length/ })
})

test('intsets decode at widths 2, 4 and 8, and must be sorted and unique', () => {
  for (const xs of [[1n, -5n, 300n], [70000n, -1n], [2n ** 40n, -(2n ** 63n), 0n]]) {
    const z = writeIntset(xs)
    assert.deepEqual(readIntset(z).map((b) => BigInt(b.toString())), [...xs].sort((a, b) => (a < b ? -1 : 1)))
  }
  const z = writeIntset([1n, 2n])
  z.writeInt16LE(1, 10)
  assert.throws(() => readIntset(z), { code: 'ERR_RDB_CORRUPT', message: /sorted/ })
  const w = writeIntset([1n])
  w.writeUInt32LE(3, 0)
  assert.throws(() => readIntset(w), { code: 'ERR_RDB_CORRUPT', message: /width/ })
  assert.throws(() => readIntset(Buffer.alloc(4)), { code: 'ERR_RDB_CORRUPT' })
})
