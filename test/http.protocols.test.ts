/**
 * What cannot move drains in the old generation: https (the listener moves; TLS sessions finish
 * their request and close), HTTP/2 (GOAWAY), WebSockets (close code 1012, Service Restart).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import http2 from 'node:http2'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { Client } from 'undici'
import { WebSocket } from 'ws'
import { exited, Service, sleep } from './fixtures/http-harness.ts'
import { freePort } from '../tools/kv/procs.ts'

const services: Service[] = []
after(async () => { for (const s of services) await s.stop() })

test('https: the listener moves; a request in flight finishes in the old generation with Connection: close', async () => {
  const port = await freePort()
  const probe = new Service()
  const key = join(probe.dir, 'key.pem')
  const cert = join(probe.dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' })
  const svc = new Service({ KIND: 'https', PORT: String(port), TLS_KEY: key, TLS_CERT: cert })
  services.push(svc, probe)
  const g1 = await svc.start()
  const client = new Client(`https://127.0.0.1:${port}`, { connect: { rejectUnauthorized: false } })
  let connects = 0
  client.on('connect', () => { connects++ })
  const warm = await client.request({ path: '/', method: 'GET' })
  await warm.body.text()
  const next = await svc.prepared()
  const inFlight = client.request({ path: '/slow?ms=1500', method: 'GET' })
  await sleep(200)
  await svc.go(next)
  const r = await inFlight
  await r.body.text()
  assert.equal(r.headers['x-gen'], '1')
  assert.equal(r.headers.connection, 'close')
  const after = await client.request({ path: '/', method: 'GET' })
  await after.body.text()
  assert.equal(after.headers['x-gen'], '2', 'a new TLS connection reaches the successor on the moved listener')
  assert.equal(connects, 2)
  const drained = await svc.wait((e) => e.event === 'drained' && e.pid === g1.child.pid)
  assert.equal(drained.closed, 1)
  assert.equal(drained.cut, 0)
  await client.close()
})

test('ws: open WebSockets get close code 1012 (Service Restart); the client reconnects to the successor', async () => {
  const svc = new Service({ KIND: 'ws' })
  services.push(svc)
  const g1 = await svc.start()
  const port = g1.event.port as number
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
  const messages: string[] = []
  ws.on('message', (m) => messages.push(String(m)))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send('hi')
  const closed = new Promise<{ code: number, reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })))
  while (messages.length < 1) await sleep(10)
  await svc.start()
  assert.deepEqual(await closed, { code: 1012, reason: 'Service Restart' })
  await exited(g1.child.pid as number)
  const again = new WebSocket(`ws://127.0.0.1:${port}/`)
  await new Promise((resolve, reject) => { again.once('open', resolve); again.once('error', reject) })
  again.send('back')
  const reply = await new Promise<string>((resolve) => again.once('message', (m) => resolve(String(m))))
  assert.deepEqual([messages[0], reply], ['gen 1 hi', 'gen 2 back'])
  again.close()
})

test('http2: sessions get GOAWAY, the stream in flight completes, new sessions reach the successor', async () => {
  const svc = new Service({ KIND: 'h2' })
  services.push(svc)
  const g1 = await svc.start()
  const port = g1.event.port as number
  const session = http2.connect(`http://127.0.0.1:${port}`)
  const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()))
  const get = async (s: http2.ClientHttp2Session, path: string): Promise<{ gen: string, body: string }> => await new Promise((resolve, reject) => {
    const req = s.request({ ':path': path })
    let body = ''
    let gen = ''
    req.on('response', (h) => { gen = String(h['x-gen']) })
    req.on('data', (d) => { body += String(d) })
    req.on('end', () => resolve({ gen, body }))
    req.on('error', reject)
  })
  assert.equal((await get(session, '/')).gen, '1')
  const next = await svc.prepared()
  const inFlight = get(session, '/slow?ms=1200')
  await sleep(200)
  await svc.go(next)
  await goaway
  assert.equal((await inFlight).gen, '1')
  const fresh = http2.connect(`http://127.0.0.1:${port}`)
  assert.equal((await get(fresh, '/')).gen, '2')
  fresh.close()
  session.close()
  const drained = await svc.wait((e) => e.event === 'drained' && e.pid === g1.child.pid)
  assert.equal(drained.cut, 0)
})
