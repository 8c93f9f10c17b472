import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { spawn } from 'node:child_process'
import { KV_BIN, withUpgradableKv } from './fixtures/kv-proc.ts'
import { KvClient } from '../src/kv/client.ts'

/** A raw client that collects replies; `write` resolves once the bytes are with the kernel. */
async function rawClient (port: number): Promise<{ write: (b: Buffer) => Promise<void>, replies: () => string, socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  let text = ''
  socket.on('data', (d) => { text += d.toString('latin1') })
  const write = async (b: Buffer): Promise<void> => { await new Promise<void>((resolve, reject) => socket.write(b, (err) => { if (err == null) resolve(); else reject(err) })) }
  return { write, replies: () => text, socket }
}

function value (size: number, salt: number): Buffer {
  const b = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((i * 2654435761 + salt) >>> 0, Math.min(i, size - 4))
  return b
}

const setCommand = (key: string, v: Buffer): Buffer => Buffer.concat([Buffer.from(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${v.length}\r\n`), v, Buffer.from('\r\n')])

async function until (what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('a client half-way through a 20 MiB SET during a live upgrade finishes it in the successor: +OK and the whole value', async () => {
  await withUpgradableKv('kv-big-', [], async (kv) => {
    const v = value(20 << 20, 1)
    const wire = setCommand('big', v)
    const c = await rawClient(kv.port)
    const half = wire.length >> 1
    await c.write(wire.subarray(0, half))
    await new Promise((resolve) => setTimeout(resolve, 300))
    await kv.upgrade()
    await c.write(wire.subarray(half))
    await until('+OK', () => c.replies().length >= 5)
    assert.equal(c.replies(), '+OK\r\n')
    const k = await KvClient.connect(kv.port)
    assert.ok(v.equals(await k.call('GET', 'big') as Buffer), 'the stored value differs')
    const info = String(await k.call('INFO', 'pagegift'))
    assert.match(info, /generation:2\r\n/)
    // The pause by phase, as the bench reads it: every phase up to the gate opening, in ms.
    const phases = /last_pause_phases_ms:(\S+)/.exec(info)?.[1] ?? ''
    assert.deepEqual(phases.split(',').map((p) => p.split('=')[0]), ['quiesce', 'state', 'adopt', 'ready', 'commit', 'serving', 'open'], info)
    for (const p of phases.split(',')) assert.ok(Number(p.split('=')[1]) >= 0, p)
    await k.close()
    c.socket.destroy()
  })
})

test('140 clients with unfinished commands (12.6 MB in all, big and small) survive two live upgrades and finish them', async () => {
  await withUpgradableKv('kv-many-', [], async (kv) => {
    // 100 clients past the giftable size (more than travel as regions of their own), 40 small ones (packed).
    const sizes = [...Array.from({ length: 100 }, () => 120_000), ...Array.from({ length: 40 }, () => 15_000)]
    const wires = sizes.map((n, i) => setCommand(`k${i}`, value(2 * n, i)))
    const clients = await Promise.all(sizes.map(async () => await rawClient(kv.port)))
    await Promise.all(clients.map(async (c, i) => { await c.write(wires[i].subarray(0, sizes[i])) }))
    assert.ok(sizes.reduce((a, b) => a + b, 0) > 12e6)
    await new Promise((resolve) => setTimeout(resolve, 500))
    await kv.upgrade()
    // A little more from each, then another upgrade: buffers adopted once move again.
    await Promise.all(clients.map(async (c, i) => { await c.write(wires[i].subarray(sizes[i], sizes[i] + 1000)) }))
    await new Promise((resolve) => setTimeout(resolve, 300))
    await kv.upgrade()
    await Promise.all(clients.map(async (c, i) => { await c.write(wires[i].subarray(sizes[i] + 1000)) }))
    await until('every +OK', () => clients.every((c) => c.replies().length >= 5))
    for (const c of clients) assert.equal(c.replies(), '+OK\r\n')
    const k = await KvClient.connect(kv.port)
    const got = await k.pipeline(sizes.map((_, i) => ['GET', `k${i}`]))
    got.forEach((g, i) => assert.ok(value(2 * sizes[i], i).equals(g as Buffer), `k${i} differs`))
    assert.match(String(await k.call('INFO', 'pagegift')), /generation:3\r\n/)
    await k.close()
    for (const c of clients) c.socket.destroy()
  })
})

test('a successor killed before READY: the predecessor resumes its half-sent clients (regions and pack), which finish there; the next upgrade moves them', async () => {
  await withUpgradableKv('kv-rbq-', [], async (kv) => {
    const sizes = [8 << 20, 200_000, 3000, 10]
    const wires = sizes.map((n, i) => setCommand(`r${i}`, value(2 * n, i)))
    const clients = await Promise.all(sizes.map(async () => await rawClient(kv.port)))
    await Promise.all(clients.map(async (c, i) => { await c.write(wires[i].subarray(0, sizes[i])) }))
    await new Promise((resolve) => setTimeout(resolve, 300))
    const mark = kv.gen.output().length
    const doomed = spawn(process.execPath, [KV_BIN, ...kv.args], { stdio: 'ignore', env: { ...process.env, PAGEGIFT_TEST_HOOKS: 'kv:before-ready=kill' } })
    assert.equal(await new Promise((resolve) => doomed.on('exit', (_code, signal) => resolve(signal))), 'SIGKILL')
    await kv.gen.waitFor(/handoff failed, serving again/, 15_000, mark)
    await Promise.all(clients.map(async (c, i) => { await c.write(wires[i].subarray(sizes[i], sizes[i] + 5)) }))
    await kv.upgrade()
    await Promise.all(clients.map(async (c, i) => { await c.write(wires[i].subarray(sizes[i] + 5)) }))
    await until('every +OK', () => clients.every((c) => c.replies().length >= 5))
    for (const c of clients) assert.equal(c.replies(), '+OK\r\n')
    const k = await KvClient.connect(kv.port)
    const got = await k.pipeline(sizes.map((_, i) => ['GET', `r${i}`]))
    got.forEach((g, i) => assert.ok(value(2 * sizes[i], i).equals(g as Buffer), `r${i} differs`))
    await k.close()
    for (const c of clients) c.socket.destroy()
  })
})
