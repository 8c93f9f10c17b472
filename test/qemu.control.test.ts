/** The keeper's control socket: every request and reply is validated; only a socket file is ever replaced. */
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { test } from 'node:test'
import { request, serveControl } from '../src/qemu/control.ts'
import { tempSocket } from './fixtures/handoff-harness.ts'

/** Sends one raw line and returns the parsed reply. */
async function raw (path: string, line: string): Promise<{ ok: boolean, error?: { code: string, message: string } }> {
  const conn = net.connect(path)
  let out = ''
  conn.setEncoding('utf8')
  conn.on('data', (d: string) => { out += d })
  conn.write(line + '\n')
  await new Promise((resolve) => { conn.on('close', resolve); setTimeout(resolve, 5000).unref() })
  return JSON.parse(out) as { ok: boolean, error?: { code: string, message: string } }
}

test('a file that is not a socket is left alone, with a clear error', async () => {
  const sock = tempSocket()
  try {
    writeFileSync(sock.path, 'precious')
    await assert.rejects(serveControl(sock.path, async () => null), { code: 'ERR_QEMU_CONTROL', message: /exists and is not a socket/ })
    assert.equal(readFileSync(sock.path, 'utf8'), 'precious')
  } finally {
    sock.cleanup()
  }
})

test('requests are validated before the handler sees them; a stale socket is replaced', async () => {
  const sock = tempSocket()
  const old = net.createServer()
  await new Promise<void>((resolve) => old.listen(sock.path, resolve))
  const seen: unknown[] = []
  const server = await serveControl(sock.path, async (req) => { seen.push(req); return { up: true } })
  try {
    assert.deepEqual(await request(sock.path, { op: 'status', timeoutMs: 5 }, 5000), { up: true })
    assert.deepEqual(seen, [{ op: 'status', timeoutMs: 5 }])
    for (const [line, why] of [['{"op":"boom"}', /op is not one of status, prepare, upgrade, stop/], ['{"op":"stop","timeoutMs":"soon"}', /timeoutMs is not an integer/], ['{"op":', /not valid JSON/], ['[1]', /request is not an object/]] as const) {
      const r = await raw(sock.path, line)
      assert.equal(r.ok, false)
      assert.equal(r.error?.code, 'ERR_QEMU_CONTROL')
      assert.match(r.error?.message ?? '', why)
    }
    assert.equal(seen.length, 1)
  } finally {
    server.close()
    old.close()
    sock.cleanup()
  }
})

test('replies are validated: an unknown error code or a malformed reply is ERR_QEMU_CONTROL', async () => {
  const sock = tempSocket()
  let reply = ''
  const fake = net.createServer((c) => { c.on('data', () => c.end(reply + '\n')) })
  await new Promise<void>((resolve) => fake.listen(sock.path, resolve))
  try {
    reply = '{"ok":false,"error":{"code":"ERR_QEMU_BUSY","message":"busy"}}'
    await assert.rejects(request(sock.path, { op: 'status' }, 5000), { code: 'ERR_QEMU_BUSY', message: 'busy' })
    reply = '{"ok":false,"error":{"code":"EVIL","message":"x"}}'
    await assert.rejects(request(sock.path, { op: 'status' }, 5000), { code: 'ERR_QEMU_CONTROL' })
    reply = '{"ok":false,"error":"nope"}'
    await assert.rejects(request(sock.path, { op: 'status' }, 5000), { code: 'ERR_QEMU_CONTROL', message: /error is not an object/ })
    reply = '{"ok":"yes"}'
    await assert.rejects(request(sock.path, { op: 'status' }, 5000), { code: 'ERR_QEMU_CONTROL', message: /ok is not a boolean/ })
  } finally {
    fake.close()
    sock.cleanup()
  }
})
