import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { alloc, release } from '../src/index.ts'
import { compareAt, copyBytes } from '../src/kv/bytes.ts'
import { Reply } from '../src/kv/reply.ts'
import { parseFloatArg } from '../src/kv/types/access.ts'
import { Store } from '../src/kv/store.ts'
import { KvServer } from '../src/kv/server.ts'
import { KvClient } from '../src/kv/client.ts'

test('copyBytes copies like Buffer.copy for every short and long length, at any offsets', () => {
  const src = Buffer.alloc(4096)
  for (let i = 0; i < src.length; i++) src[i] = (i * 7919 + 13) & 255
  for (let n = 0; n <= 300; n++) {
    for (const [s, d] of [[0, 0], [1, 3], [7, 2], [4093 - n, 100]]) {
      if (s < 0) continue
      const got = Buffer.alloc(512)
      const want = Buffer.alloc(512)
      assert.equal(copyBytes(got, d, src, s, s + n), n)
      src.copy(want, d, s, s + n)
      assert.deepEqual(got, want, `n ${n} s ${s} d ${d}`)
    }
  }
  // Alternating sources and destinations (the cached views must follow them).
  const a = Buffer.from('a'.repeat(64))
  const b = Buffer.from('b'.repeat(64))
  const out = Buffer.alloc(128)
  copyBytes(out, 0, a, 0, 64)
  copyBytes(out, 64, b, 0, 64)
  assert.equal(out.toString(), 'a'.repeat(64) + 'b'.repeat(64))
})

test('compareAt orders ranges as Buffer.compare does: shared prefixes, every length, any offsets, alternating buffers', () => {
  let x = 7
  const rnd = (n: number): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % n }
  const a = Buffer.alloc(256)
  const bufs = [Buffer.alloc(256), Buffer.alloc(256)]
  for (let round = 0; round < 20_000; round++) {
    const la = rnd(40); const lb = rnd(40); const as = rnd(200); const bs = rnd(200)
    const b = bufs[round & 1]
    // Mostly equal bytes, so that prefixes of every length are shared.
    for (let i = 0; i < 40; i++) { const v = rnd(3) === 0 ? rnd(256) : 0x61; a[as + i] = v; b[bs + i] = rnd(8) === 0 ? rnd(256) : v }
    const want = Buffer.compare(a.subarray(as, as + la), b.subarray(bs, bs + lb))
    const got = compareAt(new DataView(a.buffer, a.byteOffset, a.byteLength), as, as + la, b, bs, bs + lb)
    assert.equal(got, want, `round ${round}: ${a.toString('hex', as, as + la)} vs ${b.toString('hex', bs, bs + lb)}`)
  }
})

test('copyBytes from released giftable memory throws or copies nothing from it, never reads the unmapped pages', () => {
  const region = alloc(4096)
  const view = Buffer.from(region)
  view.fill(7)
  const out = Buffer.alloc(64)
  copyBytes(out, 0, view, 0, 64) // caches a DataView of the region
  release(region)
  assert.equal(view.length, 0)
  assert.throws(() => copyBytes(out, 0, view, 0, 64), TypeError)
})

test('reply views stay intact until recycle; a pinned buffer is never written again', () => {
  const r = new Reply(64)
  r.bulkString('first')
  const a = r.view()
  r.bulkString('second')
  const b = r.view()
  assert.equal(a.toString(), '$5\r\nfirst\r\n')
  assert.equal(b.toString(), '$6\r\nsecond\r\n')
  r.pin()
  r.recycle()
  for (let i = 0; i < 20; i++) r.bulkString('overwrite?')
  assert.equal(a.toString(), '$5\r\nfirst\r\n')
  assert.equal(b.toString(), '$6\r\nsecond\r\n')
  // Unviewed bytes hold off a recycle; growth keeps earlier views (the old buffer is left to them).
  r.recycle()
  assert.equal(r.view().toString(), '$10\r\noverwrite?\r\n'.repeat(20))
  r.recycle()
  r.int(1)
  const c = r.view()
  r.bulk(Buffer.alloc(1000, 120), 0, 1000)
  assert.equal(c.toString(), ':1\r\n')
  assert.equal(r.view().length, 1000 + 9)
})

test('reply encodings: integers, short strings (ASCII and not) and array headers', () => {
  const r = new Reply(16)
  const cases: [() => void, string][] = [
    [() => r.int(0), ':0\r\n'], [() => r.int(7), ':7\r\n'], [() => r.int(42), ':42\r\n'], [() => r.int(100), ':100\r\n'],
    [() => r.int(2147483647), ':2147483647\r\n'], [() => r.int(2147483648), ':2147483648\r\n'], [() => r.int(-5), ':-5\r\n'],
    [() => r.int(1.5), ':1.5\r\n'], [() => r.int(-(2n ** 63n)), ':-9223372036854775808\r\n'],
    [() => r.bulkString('3.25'), '$4\r\n3.25\r\n'], [() => r.bulkString(''), '$0\r\n\r\n'], [() => r.bulkString('é€'), '$5\r\né€\r\n'],
    [() => r.bulkString('x'.repeat(40)), '$40\r\n' + 'x'.repeat(40) + '\r\n'], [() => r.arrayHeader(99), '*99\r\n'], [() => r.arrayHeader(12345), '*12345\r\n']
  ]
  for (const [write, want] of cases) {
    write()
    assert.equal(r.view().toString(), want)
  }
})

test('parseFloatArg: the integer fast path agrees with the general parser', () => {
  for (const s of ['0', '-0', '7', '-7', '007', '123456789012345', '-123456789012345', '1234567890123456', '+5', '-', '1e3', '1.5', ' 1', '1 ', '12a', 'inf', '-inf']) {
    const b = Buffer.from('xx' + s + 'yy')
    const got = parseFloatArg(b, 2, 2 + s.length)
    const want = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) ? Number(s) : /^[+-]?inf(inity)?$/i.test(s) ? (s[0] === '-' ? -Infinity : Infinity) : NaN
    assert.ok(Object.is(got, want), `${s}: ${got} vs ${want}`)
  }
})

/** Reads from `s` until `n` bytes have come, or fails after `ms`. */
async function readBytes (s: net.Socket, n: number, ms: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let got = 0
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got} of ${n} bytes in ${ms} ms`)), ms)
    s.on('data', (d: Buffer) => {
      parts.push(d)
      got += d.length
      if (got >= n) { clearTimeout(timer); resolve(Buffer.concat(parts)) }
    })
    s.resume()
  })
}

test('a client that stops reading gets every reply intact while other clients reuse the reply buffer', async () => {
  const server = new KvServer(new Store({ segmentSize: 4 * 1024 * 1024 }))
  const port = await server.listen(0)
  const other = await KvClient.connect(port)
  const slow = net.connect(port, '127.0.0.1')
  try {
    await new Promise<void>((resolve, reject) => { slow.once('connect', resolve); slow.once('error', reject) })
    slow.pause()
    const value = Buffer.alloc(100)
    for (let i = 0; i < value.length; i++) value[i] = 97 + (i % 26)
    await other.call('SET', 'big', value)
    // Batches of GETs whose replies (~55 KB a turn) soon fill the socket buffers: the writes that the
    // kernel cannot take stay pending on views of the shared reply buffer, which the other client's
    // replies (60 KB of other bytes) go through meanwhile.
    const batch = 500
    const batches = 400
    const get = Buffer.from('*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n')
    const wire = Buffer.concat(Array.from({ length: batch }, () => get))
    for (let i = 0; i < batches; i++) {
      slow.write(wire)
      assert.equal(String(await other.call('SET', `k${i % 10}`, 'Z'.repeat(60000))), 'OK')
      assert.equal(String(await other.call('GET', `k${i % 10}`)), 'Z'.repeat(60000))
    }
    const one = Buffer.concat([Buffer.from('$100\r\n'), value, Buffer.from('\r\n')])
    const count = batch * batches
    const all = await readBytes(slow, one.length * count, 60_000)
    assert.equal(all.length, one.length * count)
    for (let i = 0; i < count; i++) {
      if (!all.subarray(i * one.length, (i + 1) * one.length).equals(one)) assert.fail(`reply ${i} of ${count} differs`)
    }
  } finally {
    slow.destroy()
    await other.close()
    await server.close()
  }
})

test('LRANGE across many nodes, with short and long entries, matches a model of the list', async () => {
  const server = new KvServer(new Store({ segmentSize: 4 * 1024 * 1024 }))
  const port = await server.listen(0)
  const c = await KvClient.connect(port)
  try {
    const model: string[] = []
    const cmds: (string | number)[][] = []
    for (let i = 0; i < 3000; i++) {
      const v = `${i}:` + 'v'.repeat(i % 7 === 0 ? 300 : i % 50)
      if (i % 3 === 0) { model.unshift(v); cmds.push(['LPUSH', 'l', v]) } else { model.push(v); cmds.push(['RPUSH', 'l', v]) }
    }
    await c.pipeline(cmds)
    const len = model.length
    for (const [start, stop] of [[0, -1], [0, 99], [5, 5], [1000, 2500], [-100, -1], [-5000, 10], [2999, 5000], [10, 5], [3000, 3100]]) {
      const got = (await c.call('LRANGE', 'l', start, stop) as Buffer[]).map(String)
      const s = start < 0 ? Math.max(0, len + start) : start
      const e = Math.min(stop < 0 ? len + stop : stop, len - 1)
      assert.deepEqual(got, s <= e ? model.slice(s, e + 1) : [], `LRANGE ${start} ${stop}`)
    }
  } finally {
    await c.close()
    await server.close()
  }
})
