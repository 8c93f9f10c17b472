/**
 * Request boundaries at the moment of the quiesce: a long stream, pipelined requests, headers split
 * across writes, a slow reader, and bytes sent while a connection is paused. Each request is
 * answered exactly once, by one generation, on the connection it was sent on.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { Client } from 'undici'
import { RawConn, Service, sleep, stderrSays } from './fixtures/http-harness.ts'

const services: Service[] = []
after(async () => { for (const s of services) await s.stop() })

const gens = (c: RawConn): string[] => c.responses.map((r) => r.headers['x-gen'])

test('busy at the quiesce: a 2 s stream, split headers, a slow reader and pipelined requests finish in the old generation, then their connections move', async () => {
  const svc = new Service()
  services.push(svc)
  const g1 = await svc.start()
  const port = g1.event.port as number
  const next = await svc.prepared()
  const client = new Client(`http://127.0.0.1:${port}`, { keepAliveTimeout: 600_000 })
  let connects = 0
  client.on('connect', () => { connects++ })
  const stream = client.request({ path: '/stream?ms=2000', method: 'GET' }).then(async (r) => ({ gen: r.headers['x-gen'], body: await r.body.text(), at: Date.now() }))
  const split = new RawConn(port)
  split.socket.write('GET /split HTTP/1.1\r\nHo')
  const slow = new RawConn(port)
  slow.socket.pause() // it reads nothing: the 16 MiB answer waits in the server's queue
  slow.socket.write(RawConn.request('/big?kb=16384'))
  const piped = new RawConn(port)
  piped.socket.write(RawConn.request('/slow?ms=800') + RawConn.request('/p2') + RawConn.request('/p3'))
  await sleep(300)
  const t0 = Date.now()
  const g2 = await svc.go(next)
  const upgradeMs = Date.now() - t0
  split.socket.write('st: t\r\n\r\n')
  const s = await stream
  assert.equal(s.gen, '1')
  assert.equal(s.body.trim().split('\n').length, 20, 'the stream arrived whole')
  assert.match(s.body.trim().split('\n').at(-1) as string, /chunk 19 gen 1$/)
  // At once (Node's 5 s keep-alive timeout would otherwise close the idle connection): the successor's,
  // same connection. A request that reaches the old generation before it stopped reading is answered
  // there, once, and the connection moves after it (a client that always answers within the same
  // event-loop turn can keep it there until the drain deadline: see docs/http.md); so ask again, a
  // little later each time, until generation 2 answers.
  const answeredBy: string[] = []
  for (let i = 0; i < 5 && answeredBy.at(-1) !== '2'; i++) {
    if (i > 0) await sleep(50 * i)
    const again = await client.request({ path: '/', method: 'GET' })
    await again.body.text()
    answeredBy.push(String(again.headers['x-gen']))
  }
  assert.equal(answeredBy.at(-1), '2', `answered by ${answeredBy.join(', ')}`)
  assert.ok(answeredBy.slice(0, -1).every((g) => g === '1'), `once generation 2 answers, generation 1 never does again: ${answeredBy.join(', ')}`)
  assert.equal(connects, 1, 'the stream\'s connection moved rather than reconnecting')
  slow.socket.resume()
  await Promise.all([split.responsesAt(1), slow.responsesAt(1), piped.responsesAt(3)])
  assert.deepEqual([gens(split), gens(slow), gens(piped)], [['1'], ['1'], ['1', '1', '1']])
  assert.equal(slow.responses[0].body.length, 16384 * 1024)
  assert.deepEqual(piped.responses.map((r) => JSON.parse(r.body).path ?? 'slow'), ['slow', '/p2', '/p3'])
  // Each connection then moved: its next request is the successor's, on the same connection.
  for (const c of [split, slow, piped]) c.socket.write(RawConn.request('/after'))
  await Promise.all([split.responsesAt(2), slow.responsesAt(2), piped.responsesAt(4)])
  assert.deepEqual([gens(split).at(-1), gens(slow).at(-1), gens(piped).at(-1)], ['2', '2', '2'])
  const drained = await svc.wait((e) => e.event === 'drained' && e.pid === g1.child.pid)
  const handedOff = await svc.wait((e) => e.event === 'handedOff' && e.pid === g1.child.pid)
  assert.ok((handedOff.t as number) < s.at, 'the commit came while the stream was in flight')
  // The stream, the split headers and the slow reader were busy at the commit, so they moved after it.
  assert.ok((drained.moved as number) >= 3, `moved after the commit: ${JSON.stringify(drained)}`)
  assert.equal((drained.moved as number) + (drained.movedAtQuiesce as number), 4)
  assert.equal(drained.cut, 0)
  assert.ok(upgradeMs < 2000, `the upgrade did not wait for the stream or the slow reader (${upgradeMs} ms)`)
  assert.equal(g2.event.generation, 2)
  for (const c of [split, slow, piped]) c.socket.destroy()
  await client.close()
})

test('bytes sent while connections are paused wait in the kernel and are answered once, by the successor', async () => {
  const svc = new Service()
  services.push(svc)
  const g1 = await svc.start()
  const port = g1.event.port as number
  const conns = [new RawConn(port), new RawConn(port), new RawConn(port)]
  for (const c of conns) c.socket.write(RawConn.request('/warm'))
  await Promise.all(conns.map(async (c) => await c.responsesAt(1)))
  const next = await svc.prepared({ PAGEGIFT_TEST_HOOKS: 'http:pause-ms=300' })
  const serving = svc.go(next)
  await stderrSays(next, 'pagegift-test-point http:pause') // the old generation has quiesced; the new one holds (within the 500 ms pause budget)
  const [one, piped, split] = conns
  one.socket.write(RawConn.request('/one'))
  piped.socket.write(RawConn.request('/a') + RawConn.request('/b') + RawConn.request('/c'))
  split.socket.write('GET /split HTTP/1.1\r\nHo')
  await sleep(100)
  split.socket.write('st: t\r\n\r\n')
  await serving
  await Promise.all([one.responsesAt(2), piped.responsesAt(4), split.responsesAt(2)])
  await sleep(300)
  assert.deepEqual(conns.map(gens), [['1', '2'], ['1', '2', '2', '2'], ['1', '2']])
  assert.deepEqual(piped.responses.slice(1).map((r) => JSON.parse(r.body).path), ['/a', '/b', '/c'])
  const drained = await svc.wait((e) => e.event === 'drained' && e.pid === g1.child.pid)
  assert.equal(drained.movedAtQuiesce, 3)
  for (const c of conns) c.socket.destroy()
})
