/**
 * The reactor (src/kv/rx.ts, native/binding_rx.c) reads every client of a turn into one shared
 * buffer and writes replies with a non-blocking send. These tests drive it over real sockets: reads
 * of every size and split, many clients in one turn, back-pressure, half-close, resets, fd leaks,
 * and the Node-stream path kept behind PAGEGIFT_KV_IO=node.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { encode, KvClient } from '../src/kv/client.ts'
import { localKv } from './fixtures/kv-local.ts'
import { startKv } from './fixtures/kv-proc.ts'
import { settledFdCount, withTimeout } from './helpers.ts'
import { native } from '../src/native.ts'
import { sendNow } from '../src/kv/rx.ts'

const kv = localKv()

async function connect (port: number, opts: net.NetConnectOpts = { port }): Promise<net.Socket> {
  const s = net.connect({ ...opts, port, host: '127.0.0.1' })
  await withTimeout(new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) }), 5000, 'connect')
  return s
}

/** Collects what `s` receives until it has `want` bytes. */
async function collect (s: net.Socket, want: number, what: string, ms = 20_000): Promise<Buffer> {
  const parts: Buffer[] = []
  let bytes = 0
  return await withTimeout(new Promise<Buffer>((resolve, reject) => {
    s.on('data', (d: Buffer) => { parts.push(d); bytes += d.length; if (bytes >= want) resolve(Buffer.concat(parts)) })
    s.once('error', reject)
    s.once('close', () => reject(new Error(`${what}: closed after ${bytes} bytes`)))
  }), ms, what)
}

/** Writes `wire` in pieces of random sizes (1 byte to 64 KiB), some after a pause. */
async function writeSplit (s: net.Socket, wire: Buffer, seed: number): Promise<void> {
  let x = seed
  for (let i = 0; i < wire.length;) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    const n = Math.min(wire.length - i, x % 7 === 0 ? 1 : 1 + (x >>> 8) % 65536)
    s.write(wire.subarray(i, i + n))
    i += n
    if (x % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

test('reactor: 64 clients at once, commands split anywhere, a 3 MiB value: every reply right and in order', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 13) & 0xff
  const clients = await Promise.all(Array.from({ length: 64 }, async () => await connect(kv.port)))
  const expected: string[] = []
  const runs = clients.map(async (s, i) => {
    const value = i === 0 ? big : Buffer.from(`value-${i}-`.repeat(i + 1))
    const wire = encode([['SET', `rx:${i}`, value], ['GET', `rx:${i}`], ['INCR', `rx:n:${i}`], ['PING', `p${i}`]])
    const want = Buffer.concat([Buffer.from(`+OK\r\n$${value.length}\r\n`), value, Buffer.from(`\r\n:1\r\n$${`p${i}`.length}\r\np${i}\r\n`)])
    expected[i] = want.toString('latin1')
    const got = collect(s, want.length, `client ${i}`)
    await writeSplit(s, wire, i + 1)
    return (await got).toString('latin1')
  })
  const got = await Promise.all(runs)
  for (let i = 0; i < clients.length; i++) assert.equal(got[i], expected[i], `client ${i}`)
  for (const s of clients) s.destroy()
})

test('reactor: a client that does not read is no longer read (its replies stay bounded), others are served, and it gets every reply once it reads', async () => {
  const value = Buffer.alloc(1024 * 1024, 0x61)
  await kv.run(['SET', 'rx:big', value.toString('latin1')])
  const slow = await connect(kv.port)
  try {
    slow.setNoDelay(true)
    slow.pause()
    const gets = 48
    // One GET per read: read on regardless, the server would queue all 48 MiB of replies (less the
    // few MiB the kernel's socket buffers hold); with back-pressure it stops reading after a reply
    // it could not write at once.
    for (let i = 0; i < gets; i++) {
      slow.write(encode([['GET', 'rx:big']]))
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const conn = [...kv.server.conns].find((c) => c.socket.remotePort === slow.localPort)
    assert.ok(conn !== undefined, 'the server has the slow client')
    const queued = conn.socket.writableLength
    assert.ok(queued <= 16 * value.length, `the server queued ${queued} bytes for a client that does not read`)
    assert.deepEqual(await kv.run(['PING']), ['PONG'], 'other clients are served meanwhile')
    const reply = `$${value.length}\r\n`.length + value.length + 2
    const all = collect(slow, gets * reply, 'the slow client', 30_000)
    slow.resume()
    const got = await all
    assert.equal(got.length, gets * reply)
    for (let i = 0; i < gets; i++) assert.equal(got.toString('latin1', i * reply, i * reply + 12), `$${value.length}\r\naa`, `reply ${i}`)
  } finally {
    slow.destroy()
  }
})

test('reactor: a client that half-closes after its command gets the reply, then the server closes', async () => {
  const s = await connect(kv.port, { port: kv.port, allowHalfOpen: true })
  const ended = new Promise<void>((resolve) => s.once('end', resolve))
  const got = collect(s, 7, 'half-closed client')
  s.end('PING\r\n')
  assert.equal((await got).toString(), '+PONG\r\n')
  await withTimeout(ended, 5000, 'the server to close the half-closed client')
  s.destroy()
})

test('reactor: clients that reset mid-command or vanish leave no fd and no client behind; the server serves on', async () => {
  await settledFdCount()
  const before = await settledFdCount()
  for (let round = 0; round < 4; round++) {
    const batch = await Promise.all(Array.from({ length: 50 }, async () => await connect(kv.port)))
    batch.forEach((s, i) => {
      s.write(i % 2 === 0 ? '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nhalf' : 'PING\r\n')
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    batch.forEach((s, i) => { if (i % 3 === 0) s.resetAndDestroy(); else s.destroy() })
  }
  const deadline = Date.now() + 10_000
  while (kv.server.conns.size > 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(kv.server.conns.size, 1, 'only the fixture client is left')
  assert.equal(await settledFdCount(), before, 'fds before and after 200 connections')
  assert.deepEqual(await kv.run(['SET', 'rx:after', 'x'], ['GET', 'rx:after']), ['OK', 'x'])
})

test('PAGEGIFT_KV_IO=node: the Node-stream path answers the same (pipelined, split, many clients)', async () => {
  const proc = await startKv(['--port', '0'], 20_000, { ...process.env, PAGEGIFT_KV_IO: 'node' })
  try {
    const clients = await Promise.all(Array.from({ length: 8 }, async () => await KvClient.connect(proc.port)))
    const replies = await Promise.all(clients.map(async (c, i) => await c.pipeline([['SET', `n${i}`, 'x'.repeat(100_000 * i + 1)], ['STRLEN', `n${i}`], ['DEL', `n${i}`]])))
    replies.forEach((r, i) => assert.deepEqual(r, ['OK', 100_000 * i + 1, 1]))
    for (const c of clients) await c.close()
  } finally {
    await proc.stop()
  }
})

test('rxSend sends exactly view[start, end), and refuses a range outside the view (backwards, past the end, NaN, fractional) with -EINVAL', async () => {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  const c = await connect(port)
  const peer = await withTimeout(accepted, 5000, 'accept')
  try {
    const fd = (c as unknown as { _handle: { fd: number } })._handle.fd
    const data = Buffer.from('0123456789')
    const { EINVAL } = native.constants
    for (const [s, e] of [[5, 3], [0, 11], [-1, 2], [NaN, 2], [1, NaN], [1.5, 3], [11, 11]]) assert.equal(native.rxSend(fd, data, s, e), -EINVAL, `${s}..${e}`)
    assert.equal(native.rxSend(fd, data.subarray(2), 1, 4), 3)
    assert.equal(native.rxSend(fd, data, 7, 7), 0)
    assert.equal(sendNow(fd, data, 9, 10), 1)
    assert.equal((await collect(peer, 4, 'ranges')).toString(), '3459')
  } finally {
    c.destroy()
    peer.destroy()
    server.close()
  }
})

test('reactor: commands that arrived while the server was frozen run inside thaw(), not at a later poll', async () => {
  const c = await KvClient.connect(kv.port)
  try {
    await c.call('SET', 'thaw:n', '0')
    kv.server.freeze()
    const reply = c.call('INCR', 'thaw:n')
    // Frozen: the request waits in the kernel, unread.
    await new Promise((resolve) => setTimeout(resolve, 100))
    const before = kv.server.commands
    kv.server.thaw()
    assert.equal(kv.server.commands, before + 1, 'the waiting INCR ran inside thaw()')
    assert.equal(await withTimeout(reply, 5000, 'INCR after thaw'), 1)
  } finally {
    await c.close()
  }
})
