/**
 * pagegift/http offers its connections before a handoff (`gen.offerSockets`), and a connection's
 * name must be the same at the offer and at the quiesce: a name that changed in between travels
 * with its fd, and the successor wraps it inside the pause after all. Real node:http server and
 * real TCP connections, in this process.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { test } from 'node:test'
import { resumeHandle } from '../src/handoff/handles.ts'
import { Tracker } from '../src/http/conns.ts'
import { LiveHttp } from '../src/http/live.ts'
import { RawConn } from './fixtures/http-harness.ts'
import { withTimeout } from './helpers.ts'

/** Sends one GET on a raw connection and resolves with the response's body. */
async function get (c: RawConn, path: string): Promise<string> {
  const n = c.responses.length + 1
  c.socket.write(RawConn.request(path))
  await c.responsesAt(n, 5000)
  return c.responses[n - 1].body
}

test('offer() names every open HTTP/1 connection as quiesce() exports it; a busy one is offered and stays', async () => {
  let releaseSlow = (): void => {}
  const server = http.createServer((req, res) => {
    if (req.url === '/slow') releaseSlow = () => res.end('slow')
    else res.end(`ok ${req.url ?? ''}`)
  })
  const tracker = new Tracker(server, 'http1')
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const clients = [0, 1, 2].map(() => new RawConn(port))
  const live = new LiveHttp(server, tracker, { socket: '/nonexistent', drainTimeoutMs: 1000, hardCapMs: 2000, websockets: [], exitOnDrain: false })
  try {
    // Two idle after a request each; the third waits for its response.
    assert.equal(await get(clients[0], '/a'), 'ok /a')
    assert.equal(await get(clients[1], '/b'), 'ok /b')
    clients[2].socket.write(RawConn.request('/slow'))
    await withTimeout((async () => { while (tracker.conns.size < 3 || [...tracker.conns].every((c) => !c.responding)) await new Promise((resolve) => setTimeout(resolve, 5)) })(), 5000, 'the slow request arrives')

    const offered = live.offer()
    assert.equal(Object.keys(offered).length, 3, 'every open connection, busy or not, is offered')
    const byName = new Map([...tracker.conns].map((c) => [`http:conn:${c.id}`, c]))
    for (const [name, socket] of Object.entries(offered)) assert.equal(byName.get(name)?.socket, socket, `${name} is its connection`)

    const state = live.quiesce(process.pid)
    const exported = Object.keys(state.handles ?? {}).filter((n) => n.startsWith('http:conn:'))
    assert.equal(exported.length, 2, 'the two idle connections move at the quiesce')
    for (const name of exported) assert.ok(name in offered, `${name} was offered under the same name`)
    const busy = [...tracker.conns].find((c) => c.responding)
    assert.ok(busy !== undefined && !exported.includes(`http:conn:${busy.id}`), 'the busy one is not exported')

    // What a rollback does: the exports resume, and every connection serves again.
    for (const h of Object.values(state.handles ?? {})) resumeHandle(h as Parameters<typeof resumeHandle>[0])
    live.resumed()
    releaseSlow()
    assert.equal(await get(clients[0], '/c'), 'ok /c')
    assert.equal(await get(clients[1], '/d'), 'ok /d')
  } finally {
    for (const c of clients) c.socket.destroy()
    server.close()
  }
})
