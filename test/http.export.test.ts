/**
 * exportSocket on a live node:http connection, with nothing done first: reading stops at once, so
 * bytes the client sends from then on stay in the kernel (for the successor), and a rollback
 * (resumeHandle) makes the connection serve again. node:http's 'pause' listener clears the handle's
 * reading flag; before exportSocket paused the stream ahead of setting that flag, its read of the
 * buffered bytes started the handle again and took the next request into this process.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { test } from 'node:test'
import { handoff } from '../src/index.ts'
import { resumeHandle } from '../src/handoff/handles.ts'
import { withTimeout } from './helpers.ts'

const request = (i: number): string => `GET /r${i} HTTP/1.1\r\nHost: x\r\n\r\n`

/** A raw keep-alive client: responses arrive as text, split on the status line. */
class Client {
  readonly socket: net.Socket
  text = ''
  constructor (port: number) {
    this.socket = net.connect(port, '127.0.0.1')
    this.socket.on('data', (d: Buffer) => { this.text += d.toString() })
  }

  answers (): string[] { return this.text.split('HTTP/1.1 200 OK').slice(1) }

  async waitAnswers (n: number, what: string): Promise<void> {
    await withTimeout((async () => { while (this.answers().length < n) await new Promise((resolve) => setTimeout(resolve, 5)) })(), 10_000, what)
  }
}

async function serve (): Promise<{ server: http.Server, port: number, served: string[], conn: Promise<net.Socket> }> {
  const served: string[] = []
  const server = http.createServer((req, res) => { served.push(req.url ?? ''); res.end(`answer ${req.url}`) })
  const conn = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as net.AddressInfo).port, served, conn }
}

test('exportSocket on a flowing http connection: later bytes stay in the kernel; resumed, it serves them once', async () => {
  const { server, port, served, conn } = await serve()
  const client = new Client(port)
  try {
    client.socket.write(request(1))
    await client.waitAnswers(1, 'first answer')
    const socket = await conn
    // The response has left the process: the connection is at a request boundary.
    await withTimeout((async () => { while (socket.writableLength > 0) await new Promise((resolve) => setTimeout(resolve, 5)) })(), 10_000, 'write queue')
    const read = socket.bytesRead
    const h = handoff.exportSocket(socket)
    assert.equal(h.pending.length, 0)
    client.socket.write(request(2))
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(socket.bytesRead, read, 'the exported connection read bytes sent after its export')
    assert.equal(socket.readableLength, 0)
    assert.deepEqual(served, ['/r1'])
    assert.equal(client.answers().length, 1)

    resumeHandle(h)
    await client.waitAnswers(2, 'the request sent while exported, answered after the resume')
    client.socket.write(request(3))
    await client.waitAnswers(3, 'a request after the resume')
    assert.deepEqual(served, ['/r1', '/r2', '/r3'])
    assert.equal(socket.destroyed, false)
  } finally {
    client.socket.destroy()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})
