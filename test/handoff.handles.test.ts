/**
 * Handles in one process: a server stops accepting while its backlog keeps queueing; a connection
 * moves with its unread bytes and survives its old owner letting go; an adoption before the commit
 * point neither reads nor writes; TLS is refused clearly.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import tls from 'node:tls'
import { test } from 'node:test'
import { adoptServer, adoptSocket, exportServer, exportSocket } from '../src/handoff/index.ts'
import { collectingExports, inheritedHandle, releaseHandle, resumeHandle, wireFd, type Handle } from '../src/handoff/handles.ts'
import { SuccessorGate } from '../src/handoff/gate.ts'
import { defaultEnv } from '../src/handoff/env.ts'
import { sleep } from './fixtures/handoff-harness.ts'

async function listening (server = net.createServer()): Promise<{ server: net.Server, port: number }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as net.AddressInfo).port }
}

async function pair (server: net.Server, port: number): Promise<{ client: net.Socket, conn: net.Socket }> {
  const client = net.connect(port, '127.0.0.1')
  const [conn] = await once(server, 'connection') as [net.Socket]
  return { client, conn }
}

const echo = (s: net.Socket): void => { s.on('data', (d) => s.write(d)) }

/** A handle as a committed successor holds it: its own fd (a dup, as SCM_RIGHTS would make). */
function received (kind: 'server' | 'socket', fd: number, pending: Buffer = Buffer.alloc(0)): Handle {
  const gate = new SuccessorGate()
  gate.open()
  return inheritedHandle(kind, defaultEnv.dup(fd), pending, {}, gate)
}

test('an exported server accepts nothing, yet its backlog queues; adoptServer serves the queue', async () => {
  const { server, port } = await listening()
  let accepted = 0
  server.on('connection', () => accepted++)
  const h = exportServer(server)
  assert.equal(h.kind, 'server')
  assert.equal(h.info.port, port)
  assert.equal(server.listening, false)
  const client = net.connect(port, '127.0.0.1')
  await once(client, 'connect') // the kernel completes the handshake from the backlog
  client.write('queued')
  await sleep(100)
  assert.equal(accepted, 0)
  assert.throws(() => adoptServer(h), { code: 'ERR_PAGEGIFT_HANDOFF_HANDLE', message: /exported here/ })
  // What a successor receives: another fd for the same listening socket.
  const inherited = received('server', wireFd(h))
  const adopted = adoptServer(inherited, net.createServer(echo))
  const [data] = await once(client, 'data') as [Buffer]
  assert.equal(String(data), 'queued')
  assert.equal(accepted, 0)
  releaseHandle(h)
  client.destroy()
  adopted.close()
  assert.throws(() => adoptServer(inherited), { code: 'ERR_PAGEGIFT_HANDOFF_HANDLE', message: /already adopted/ })
})

test('a rolled-back server export serves the connections that queued meanwhile', async () => {
  const { server, port } = await listening(net.createServer(echo))
  const h = exportServer(server)
  const client = net.connect(port, '127.0.0.1')
  await once(client, 'connect')
  client.write('later')
  resumeHandle(h)
  const [data] = await once(client, 'data') as [Buffer]
  assert.equal(String(data), 'later')
  assert.equal(server.listening, true)
  client.destroy()
  server.close()
})

test('a socket moves with its unread bytes; the old owner letting go does not close it', async () => {
  const { server, port } = await listening()
  const { client, conn } = await pair(server, port)
  client.write('PART')
  await sleep(50) // read by the stream, never consumed by the app
  let closedByPeer = false
  client.on('end', () => { closedByPeer = true })
  const h = exportSocket(conn, Buffer.from('APP:'))
  assert.equal(String(h.pending), 'APP:PART')
  const { socket, pending } = adoptSocket(received('socket', wireFd(h), h.pending))
  assert.equal(String(pending), 'APP:PART')
  releaseHandle(h)
  assert.equal(conn.destroyed, true)
  echo(socket)
  client.write('MORE')
  const [data] = await once(client, 'data') as [Buffer]
  assert.equal(String(data), 'MORE')
  assert.equal(closedByPeer, false)
  client.destroy()
  socket.destroy()
  server.close()
})

test('an adoption before the commit point neither reads nor writes until COMMIT', async () => {
  const { server, port } = await listening()
  const { client, conn } = await pair(server, port)
  const gate = new SuccessorGate()
  const exported = exportSocket(conn)
  const h = inheritedHandle('socket', defaultEnv.dup(wireFd(exported)), Buffer.alloc(0), {}, gate)
  const { socket } = adoptSocket(h)
  const got: string[] = []
  socket.on('data', (d) => got.push(String(d)))
  socket.write('early')
  let clientGot = ''
  client.on('data', (d) => { clientGot += String(d) })
  client.write('hello')
  await sleep(100)
  assert.deepEqual(got, [])
  assert.equal(clientGot, '')
  gate.open()
  await sleep(100)
  assert.deepEqual(got, ['hello'])
  assert.equal(clientGot, 'early')
  releaseHandle(exported)
  client.destroy()
  socket.destroy()
  server.close()
})

test('an aborted adoption closes only its own copy: the old owner keeps the connection', async () => {
  const { server, port } = await listening()
  const { client, conn } = await pair(server, port)
  const gate = new SuccessorGate()
  const h = inheritedHandle('socket', defaultEnv.dup((conn as unknown as { _handle: { fd: number } })._handle.fd), Buffer.alloc(0), {}, gate)
  adoptSocket(h)
  gate.abort()
  await sleep(50)
  echo(conn)
  client.write('still here')
  const [data] = await once(client, 'data') as [Buffer]
  assert.equal(String(data), 'still here')
  client.destroy()
  conn.destroy()
  server.close()
})

test('TLS cannot move, and bad arguments are named', async () => {
  assert.throws(() => exportServer(tls.createServer()), { code: 'ERR_PAGEGIFT_HANDOFF_TLS' })
  assert.throws(() => exportSocket(new tls.TLSSocket(new net.Socket())), { code: 'ERR_PAGEGIFT_HANDOFF_TLS', message: /TLS socket cannot move/ })
  assert.throws(() => exportServer({} as net.Server), { name: 'TypeError' })
  assert.throws(() => exportServer(net.createServer()), { code: 'ERR_PAGEGIFT_HANDOFF_NOT_LISTENING' })
  assert.equal(exportSocket(new net.Socket()).info.closed, 1, 'a closed connection is left out, not an error')
  assert.throws(() => adoptSocket({} as never), { name: 'TypeError' })
})

test('an export lands in the handoff that made it, also when two in one process quiesce at once', async () => {
  const listeners = await Promise.all([0, 1, 2, 3, 4].map(async () => await listening()))
  const servers = listeners.map((l) => l.server)
  const port = (i: number): number => listeners[i].port
  const ports = (hs: Handle[]): unknown[] => hs.map((h) => h.info.port)
  const lone: Handle[] = []
  await collectingExports(defaultEnv, lone, async () => { await sleep(5); exportServer(servers[0]) })
  const nobodys = exportServer(servers[1]) // outside any handoff
  assert.deepEqual(ports(lone), [port(0)], 'an export after an await is still the handoff\'s; one outside it is nobody\'s')
  // The first runs untracked; the second, started while the first runs, is told apart by async context.
  const first: Handle[] = []
  const second: Handle[] = []
  const one = collectingExports(defaultEnv, first, async () => { await sleep(20); exportServer(servers[2]); await sleep(40) })
  await sleep(5)
  const two = collectingExports(defaultEnv, second, async () => { await sleep(30); exportServer(servers[3]); await sleep(40); exportServer(servers[4]) })
  await Promise.all([one, two])
  assert.deepEqual(ports(first), [port(2)])
  assert.deepEqual(ports(second), [port(3), port(4)])
  for (const h of [...lone, nobodys, ...first, ...second]) releaseHandle(h)
  for (const s of servers) s.close()
})
