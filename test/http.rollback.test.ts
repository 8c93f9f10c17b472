/**
 * A successor that dies at any step of the handoff: the old generation resumes every connection
 * (the listener, the idle ones it had exported, the ones it held at a boundary), answers each
 * request once, and the next successor still takes over.
 */
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { after, test } from 'node:test'
import { Pool } from 'undici'
import { exited, Load, RawConn, Service, sleep, stderrSays } from './fixtures/http-harness.ts'

const services: Service[] = []
after(async () => { for (const s of services) await s.stop() })

const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

test('the successor killed at each step: the old generation resumes every connection, nothing lost, nothing answered twice', async () => {
  const svc = new Service()
  services.push(svc)
  const g1 = await svc.start()
  const pid1 = g1.child.pid as number
  const port = g1.event.port as number
  const load = new Load(Pool, port, 8)
  await sleep(300)
  const fdsBefore = fds(pid1)
  let idle: RawConn | undefined
  try {
    // http:start dies before it says HELLO; the others after STATE, when the old generation has quiesced.
    for (const point of ['http:start', 'http:joined', 'http:adopted', 'http:before-ready']) {
      const child = svc.spawn({ PAGEGIFT_TEST_HOOKS: `${point}=kill` })
      await stderrSays(child, `pagegift-test-point ${point}`)
      await exited(child.pid as number)
      if (point !== 'http:start') await svc.wait((e) => e.event === 'resumed' && e.pid === pid1 && svc.events().filter((x) => x.event === 'resumed').length >= ['http:joined', 'http:adopted', 'http:before-ready'].indexOf(point) + 1, 20_000, `resumed after ${point}`)
    }
    // Stalled before READY: requests sent meanwhile wait in the kernel; the kill rolls back; gen 1 answers them.
    // (A fresh connection: Node closes one idle for 5 s, and the rounds above take longer.)
    idle = new RawConn(port)
    idle.socket.write(RawConn.request('/warm'))
    await idle.responsesAt(1)
    const stalled = svc.spawn({ PAGEGIFT_TEST_HOOKS: 'http:before-ready=stall' })
    await stderrSays(stalled, 'pagegift-test-point http:before-ready')
    idle.socket.write(RawConn.request('/while-paused') + RawConn.request('/also'))
    await sleep(200)
    stalled.kill('SIGKILL')
    await idle.responsesAt(3)
    assert.deepEqual(idle.responses.map((r) => r.headers['x-gen']), ['1', '1', '1'])
    await sleep(300)
    assert.ok(fds(pid1) <= fdsBefore + 3, `no fd leak in the old generation: ${fdsBefore} -> ${fds(pid1)}`)
    const g2 = await svc.start()
    assert.equal(g2.event.generation, 2)
    idle.socket.write(RawConn.request('/after'))
    await idle.responsesAt(4)
    assert.equal(idle.responses[3].headers['x-gen'], '2')
    await sleep(300)
  } finally {
    await load.stop()
  }
  await exited(pid1)
  const pid2 = svc.events().find((e) => e.event === 'serving' && e.generation === 2)?.pid as number
  process.kill(pid2, 'SIGTERM')
  await svc.wait((e) => e.event === 'exit' && e.pid === pid2)
  assert.deepEqual(load.errors, [])
  assert.equal(load.non2xx, 0)
  assert.equal(load.connects, 8, 'no connection was lost or refused')
  const served = new Map(svc.events().filter((e) => e.event === 'drained' || e.event === 'exit').map((e) => [e.pid, e.served as number]))
  assert.equal(served.get(pid1), (load.byPid.get(pid1) ?? 0) + 3)
  assert.equal(served.get(pid2), (load.byPid.get(pid2) ?? 0) + 1)
  assert.equal(svc.events().filter((e) => e.event === 'resumed').length, 4)
  idle?.socket.destroy()
})
