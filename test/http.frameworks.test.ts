/** node:http, Express 5 and Fastify 5, each unchanged, upgraded live through the real `pagegift upgrade` CLI. */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { Pool } from 'undici'
import { exited, Load, Service, sleep } from './fixtures/http-harness.ts'

const services: Service[] = []
after(async () => { for (const s of services) await s.stop() })

for (const kind of ['node', 'express', 'fastify']) {
  test(`${kind}: pagegift upgrade moves the listener and the keep-alive connections; pagegift status follows`, async () => {
    const svc = new Service({ KIND: kind })
    services.push(svc)
    const g1 = await svc.start()
    const load = new Load(Pool, g1.event.port as number, 4)
    let up: Awaited<ReturnType<Service['cliUpgrade']>>
    try {
      await sleep(300)
      up = await svc.cliUpgrade()
      await sleep(300)
    } finally {
      await load.stop()
    }
    assert.equal(up.code, 0, up.err)
    assert.match(up.out, /committed: generation 2 \(pid \d+\) is serving/)
    const g2 = await svc.wait((e) => e.event === 'serving' && e.generation === 2)
    await exited(g1.child.pid as number)
    assert.deepEqual(load.errors, [])
    assert.equal(load.non2xx, 0)
    assert.equal(load.connects, 4, 'no new connection')
    assert.ok((load.byPid.get(g2.pid) ?? 0) > 0, 'the successor answered on the moved connections')
    const drained = await svc.wait((e) => e.event === 'drained' && e.pid === g1.child.pid)
    assert.equal(drained.served, load.byPid.get(g1.child.pid as number))
    assert.equal(drained.cut, 0)
  })
}
