/**
 * A peer that never reads (or never fills) its splice pipes holds no threadpool thread: the pipe
 * pump waits for readiness on the event loop, and a timeout or a close stops it (issue 9 item 5).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { Channel } from '../src/index.ts'
import { native } from '../src/native.ts'
import { MAX_MESSAGE, decode, encode } from '../src/wire.ts'
import { fdCount, fixtures, settle } from './helpers.ts'

async function next (fd: number, timeoutMs = 20_000): Promise<{ type: number, json: any, fds: number[] }> {
  const buf = new Uint8Array(MAX_MESSAGE + 1)
  const out = new Int32Array(66)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const n = native.recvmsg(fd, buf, out)
    if (n > 0) return { ...decode(buf, n, out[0]), fds: Array.from(out.subarray(2, 2 + out[0])) }
    if (Date.now() > deadline) throw new Error('no message in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

function send (fd: number, type: number, json: unknown, fds: number[] = []): void {
  assert.ok(native.sendmsg(fd, [encode(type, json, 0, fds.length)], fds) >= 0)
}

test('8 splice requests whose pipes are never read: fs.readFile stays prompt and process.exit() returns', { timeout: 60_000 }, async () => {
  const [mine, theirs] = native.seqpacketPair() as number[]
  const child = spawn(process.execPath, ['--import', 'tsx', join(fixtures, 'safety-victim.ts'), '8', '3000'], { stdio: ['ignore', 'pipe', 'inherit', theirs] })
  native.close(theirs)
  let stdout = ''
  child.stdout?.on('data', (d) => { stdout += d })
  const exited = new Promise<{ code: number | null, signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const pipes: number[] = []
  for (let i = 0; i < 8; i++) {
    const offer = await next(mine)
    assert.equal(offer.type, 1)
    send(mine, 3, { id: offer.json.id, path: 'splice' })
  }
  for (let i = 0; i < 8; i++) {
    const reply = await next(mine)
    assert.equal(reply.type, 4, 'the writer answered with a pipe')
    pipes.push(...reply.fds)
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const { code, signal } = await exited
  clearTimeout(timer)
  assert.equal(signal, null, 'process.exit() returned: the child was not killed at the deadline')
  assert.equal(code, 0)
  const { readMs } = JSON.parse(stdout.trim())
  assert.equal(typeof readMs, 'number', 'fs.readFile completed')
  assert.ok(readMs < 1000, `fs.readFile took ${readMs} ms`)
  for (const fd of [...pipes, mine]) native.close(fd)
})

test('reader side: a pipe the writer never fills ends at receive()\'s timeoutMs, holding no thread', { timeout: 60_000 }, async () => {
  await settle()
  const before = fdCount()
  const [a, b] = native.seqpacketPair() as number[]
  const ch = new Channel(a)
  const got = ch.receive({ into: new Uint8Array(4 << 20), timeoutMs: 1000 })
  send(b, 1, { id: 1, lengths: [4 << 20] })
  const pipes: number[] = []
  for (let i = 0; i < 2; i++) {
    const need = await next(b)
    if (need.json.path === 'cma') { send(b, 9, { id: 1, reason: 'no' }); continue }
    const pipe = native.pipe(1 << 16) as number[]
    send(b, 4, { id: 1 }, [pipe[0]])
    native.close(pipe[0])
    pipes.push(pipe[1])
  }
  const start = performance.now()
  const reads = await Promise.all([1, 2, 3, 4, 5].map(async () => { await readFile(new URL(import.meta.url)); return performance.now() - start }))
  assert.ok(Math.max(...reads) < 1000, `fs.readFile took ${Math.max(...reads)} ms`)
  await assert.rejects(got, { code: 'ERR_PAGEGIFT_TIMEOUT' })
  const fail = await next(b)
  assert.equal(fail.type, 6, 'the writer is told the gift failed')
  for (const fd of [...pipes, b]) native.close(fd)
  ch.close()
  await settle()
  assert.equal(fdCount(), before)
})

test('timeoutMs must be a positive number of milliseconds', { timeout: 60_000 }, async () => {
  const [a, b] = native.seqpacketPair() as number[]
  const ch = new Channel(a)
  assert.throws(() => ch.receive({ timeoutMs: -1 }), { name: 'RangeError' })
  await assert.rejects(ch.gift(new Uint8Array(1), { timeoutMs: Number.NaN }), { name: 'RangeError' })
  ch.close()
  native.close(b)
})

test('one splice per gift: a second request for the same gift fails it instead of starting another job', { timeout: 60_000 }, async () => {
  const [a, b] = native.seqpacketPair() as number[]
  const ch = new Channel(a)
  const data = new Uint8Array(4 << 20).fill(6)
  const gift = ch.gift(data).then(() => assert.fail('not delivered'), (e: Error & { code: string, buffers?: ArrayBuffer[] }) => e)
  const offer = await next(b)
  send(b, 3, { id: offer.json.id, path: 'splice' })
  send(b, 3, { id: offer.json.id, path: 'splice' })
  const first = await next(b)
  assert.equal(first.type, 4, 'the first request gets a pipe')
  const second = await next(b)
  assert.equal(second.type, 6, 'the second is refused with Fail')
  const err = await gift
  assert.equal(err.code, 'ERR_PAGEGIFT_PROTOCOL')
  assert.ok(new Uint8Array((err.buffers as ArrayBuffer[])[0]).every((x) => x === 6))
  for (const fd of [...first.fds, b]) native.close(fd)
  ch.close()
})
