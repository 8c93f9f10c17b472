/** pagegift/http under keep-alive load: back-to-back upgrades, exactly once, no new connections. */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { after, test } from 'node:test'
import { Pool } from 'undici'
import { exited, Load, Service, sleep } from './fixtures/http-harness.ts'

const services: Service[] = []
after(async () => { for (const s of services) await s.stop() })

/** 20 upgrades back to back, each successor loading its modules while its predecessor still serves. */
async function upgrades (svc: Service, pids: number[]): Promise<void> {
  const prepared = [svc.prepare(), svc.prepare(), svc.prepare()]
  for (let i = 0; i < 20; i++) {
    const next = await svc.go(prepared.shift() as ChildProcess)
    if (i + prepared.length < 19) prepared.push(svc.prepare())
    pids.push(next.child.pid as number)
    assert.equal(next.event.generation, i + 2)
  }
}

test('32 keep-alive connections across 20 back-to-back upgrades: 0 errors, 0 non-2xx, each answered once, no new connection', async () => {
  const svc = new Service()
  services.push(svc)
  const g1 = await svc.start()
  const load = new Load(Pool, g1.event.port as number, 32)
  const until = Date.now() + 10_000
  while (load.connects < 32 && Date.now() < until) await sleep(20)
  assert.equal(load.connects, 32, 'the client opened its 32 connections')
  const pids = [g1.child.pid as number]
  try {
    await upgrades(svc, pids)
  } finally {
    await sleep(300)
    await load.stop()
  }
  for (const pid of pids.slice(0, -1)) await exited(pid)
  const last = pids.at(-1) as number
  process.kill(last, 'SIGTERM')
  await svc.wait((e) => e.event === 'exit' && e.pid === last)
  assert.deepEqual(load.errors, [])
  assert.equal(load.non2xx, 0)
  assert.equal(load.connects, 32, 'no new TCP connection during the upgrades')
  assert.equal(load.disconnects, 0)
  // Exactly once: what every generation says it served is what the client received, pid by pid.
  const served = new Map<number, number>()
  for (const e of svc.events()) if (e.event === 'drained' || e.event === 'exit') served.set(e.pid, e.served as number)
  assert.equal(served.size, 21)
  for (const pid of pids) assert.equal(served.get(pid), load.byPid.get(pid) ?? 0, `pid ${pid}: served vs received`)
  const later = pids.slice(1).filter((pid) => (load.byPid.get(pid) ?? 0) > 0)
  assert.ok(later.length >= 15, `successors answered (${later.length} of 20)`)
})
