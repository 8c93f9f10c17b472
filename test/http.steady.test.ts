/**
 * The wrapper's steady state costs nothing per request: a wrapped server has the same 'request'
 * listeners and each connection the same listeners as on a plain node:http server, until a handoff.
 * And its set-up (the handoff's prime included) listens on no kept fd: a rehearsal that exported a
 * listening socket and listened on its fd again left every later request of the process dearer
 * (10 to 25% more CPU, wrapped against plain under the same load at the same time).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { Agent, request } from 'undici'
import { liveHttp } from '../src/http/index.ts'

const events = ['close', 'data', 'end', 'error', 'finish', 'readable', 'timeout'] as const

/** Serves 50 keep-alive requests on one connection; returns the listener counts seen in the handler. */
async function listenersAfterLoad (server: http.Server, port: number): Promise<{ request: number, socket: Record<string, number> }> {
  let socket: net.Socket | null = null
  server.prependListener('request', (req: http.IncomingMessage) => { socket = req.socket })
  const agent = new Agent({ connections: 1 })
  try {
    for (let i = 0; i < 50; i++) {
      const r = await request(`http://127.0.0.1:${port}/`, { dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000 })
      assert.equal(await r.body.text(), 'ok')
    }
  } finally {
    await agent.close()
  }
  const s = socket as unknown as net.Socket
  return { request: server.listenerCount('request') - 1, socket: Object.fromEntries(events.map((e) => [e, s.listenerCount(e)])) }
}

const handler = (_req: http.IncomingMessage, res: http.ServerResponse): void => { res.end('ok') }

test('steady state: no per-request or per-connection listener beyond plain node:http', async () => {
  const plain = http.createServer(handler)
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve))
  const base = await listenersAfterLoad(plain, (plain.address() as net.AddressInfo).port)
  await new Promise((resolve) => plain.close(resolve))

  const dir = mkdtempSync(join(tmpdir(), 'pg-http-steady-'))
  const wrapped = http.createServer(handler)
  const listens: unknown[] = []
  const listen = net.Server.prototype.listen
  net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) { listens.push(args[0]); return listen.apply(this, args as Parameters<typeof listen>) } as typeof listen
  let gen: Awaited<ReturnType<typeof liveHttp>>
  try {
    gen = await liveHttp(wrapped, { socket: join(dir, 'h.sock'), listen: { port: 0, host: '127.0.0.1' }, exitOnDrain: false })
  } finally {
    net.Server.prototype.listen = listen
  }
  assert.deepEqual(listens.filter((a) => typeof a === 'object' && a !== null && 'fd' in a), [], 'a server listened on a kept fd during set-up')
  try {
    const seen = await listenersAfterLoad(wrapped, (wrapped.address() as net.AddressInfo).port)
    assert.deepEqual(seen, base)
  } finally {
    await new Promise((resolve) => wrapped.close(resolve))
    await gen.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
