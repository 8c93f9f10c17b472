/** pagegift/http soak: 100 back-to-back upgrades under 32 keep-alive connections; exactly once, no new connection. */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { after, test } from 'node:test'
import { Pool } from 'undici'
import { exited, Load, Service, sleep } from '../fixtures/http-harness.ts'

const UPGRADES = Number(process.env.HTTP_SOAK_UPGRADES ?? 100)
const services: Service[] = []
after(async () => { for (const s of services) await s.stop() })

test(`${UPGRADES} back-to-back upgrades, 32 keep-alive connections: 0 errors, each answered once, no new connection`, async () => {
  const svc = new Service({ CACHE_MB: '16' })
  services.push(svc)
  const g1 = await svc.start()
  const load = new Load(Pool, g1.event.port as number, 32, 2)
  const pids = [g1.child.pid as number]
  try {
    const prepared: ChildProcess[] = [svc.prepare(), svc.prepare(), svc.prepare()]
    for (let i = 0; i < UPGRADES; i++) {
      const next = await svc.go(prepared.shift() as ChildProcess)
      if (i + prepared.length < UPGRADES - 1) prepared.push(svc.prepare())
      pids.push(next.child.pid as number)
      assert.equal(next.event.generation, i + 2)
      // Old generations exit once drained: nothing accumulates.
      if (pids.length > 4) await exited(pids[pids.length - 5])
    }
    await sleep(500)
  } finally {
    await load.stop()
  }
  const last = pids.at(-1) as number
  process.kill(last, 'SIGTERM')
  await svc.wait((e) => e.event === 'exit' && e.pid === last)
  assert.deepEqual(load.errors, [])
  assert.equal(load.non2xx, 0)
  assert.equal(load.connects, 32)
  const served = new Map(svc.events().filter((e) => e.event === 'drained' || e.event === 'exit').map((e) => [e.pid, e.served as number]))
  for (const pid of pids) assert.equal(served.get(pid), load.byPid.get(pid) ?? 0, `pid ${pid}`)
})
