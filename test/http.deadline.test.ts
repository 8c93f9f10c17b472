/** Past the drain deadline a busy connection is told Connection: close; past the hard cap it is cut and counted. */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { Client } from 'undici'
import { Service, sleep } from './fixtures/http-harness.ts'

const services: Service[] = []
after(async () => { for (const s of services) await s.stop() })

test('drain deadline: a response not started yet says Connection: close; the hard cap (2x) cuts a stream and counts it', async () => {
  const svc = new Service({ DRAIN_MS: '1000' })
  services.push(svc)
  const g1 = await svc.start()
  const port = g1.event.port as number
  const late = new Client(`http://127.0.0.1:${port}`)
  const stream = new Client(`http://127.0.0.1:${port}`)
  const next = await svc.prepared()
  const slow = late.request({ path: '/slow?ms=1800', method: 'GET' })
  const long = stream.request({ path: '/stream?ms=6000', method: 'GET' }).then(async (r) => await r.body.text())
  await sleep(200)
  const t0 = Date.now()
  await svc.go(next)
  const r = await slow
  await r.body.text()
  assert.equal(r.headers['x-gen'], '1')
  assert.equal(r.headers.connection, 'close', 'past the deadline the response closes its connection')
  await assert.rejects(long, 'the stream still running at the hard cap was cut')
  const drained = await svc.wait((e) => e.event === 'drained' && e.pid === g1.child.pid)
  assert.ok(Date.now() - t0 < 4000, 'the old generation did not wait for the 6 s stream')
  assert.deepEqual([drained.cut, drained.closed], [1, 1])
  await Promise.all([late.close(), stream.destroy()])
})
