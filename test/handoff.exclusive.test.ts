/**
 * Guarantee 3 (no double owners) and 6 (timeouts), with real processes: one handoff at a time, a
 * second successor is refused clearly, a status request never starts a handoff, and a successor that
 * stalls is timed out while the predecessor keeps everything.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { status } from '../src/handoff/index.ts'
import { LineClient, startService, tempSocket, type Service } from './fixtures/handoff-harness.ts'

const services: Service[] = []
const clients: LineClient[] = []
after(() => { for (const s of services) s.kill(); for (const c of clients) c.close() })
function service (env: Record<string, string>): Service { const s = startService(env); services.push(s); return s }

test('a second successor is refused while a handoff runs; status does not trigger one', async () => {
  const sock = tempSocket()
  try {
    const gen1 = service({ HANDOFF_SOCK: sock.path })
    const { port } = await gen1.wait('listening') as unknown as { port: number }
    await gen1.wait('serving')
    for (let i = 0; i < 3; i++) {
      const st = await status(sock.path)
      assert.equal(st.state, 'serving')
      assert.equal(st.generation, 1)
      assert.equal(st.history.length, 0)
    }
    assert.equal(gen1.events.some((e) => e.event === 'resumed' || e.event === 'handedOff'), false)

    // It stalls before the pause (a stall after quiescing is rolled back within the pause budget: see handoff.defects).
    const first = service({ HANDOFF_SOCK: sock.path, HANDOFF_STALL_AT: 'successor:hello-sent' })
    await first.wait('step')
    const during = await status(sock.path)
    assert.equal(during.state, 'handing-off')
    const second = service({ HANDOFF_SOCK: sock.path })
    const refused = await second.wait('joinFailed')
    assert.equal(refused.code, 'ERR_PAGEGIFT_HANDOFF_BUSY')
    assert.match(String(refused.reason), new RegExp(`already running.*pid ${first.pid}|pid ${first.pid}.*already running`))
    assert.equal((await second.exited()).code, 3)

    first.kill()
    const resumed = await gen1.wait('resumed')
    assert.equal(resumed.code, 'ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE')
    const c = new LineClient(port)
    clients.push(c)
    assert.equal(await c.request('INC 1'), '1 1')
    const third = service({ HANDOFF_SOCK: sock.path })
    assert.equal((await third.wait('serving')).generation, 2)
    assert.equal(await c.request('INC 1'), '2 2')
  } finally {
    sock.cleanup()
  }
})

test('a successor that stalls before READY is timed out; the predecessor keeps serving', async () => {
  const sock = tempSocket()
  try {
    const gen1 = service({ HANDOFF_SOCK: sock.path, HANDOFF_TIMEOUT_MS: '800' })
    const { port } = await gen1.wait('listening') as unknown as { port: number }
    await gen1.wait('serving')
    const c = new LineClient(port)
    clients.push(c)
    assert.equal(await c.request('INC 2'), '1 1')
    const stuck = service({ HANDOFF_SOCK: sock.path, HANDOFF_STALL_AT: 'successor:before-ready' })
    await stuck.wait('step')
    const t0 = Date.now()
    c.send('INC 2')
    const resumed = await gen1.wait('resumed')
    assert.equal(resumed.code, 'ERR_PAGEGIFT_HANDOFF_TIMEOUT')
    assert.ok(Date.now() - t0 < 5000)
    assert.equal(await c.line(), '1 2')
    // The stuck successor learns of the rollback if it ever sends READY; here it just goes away.
    stuck.kill()
    assert.equal(await c.request('INC 2'), '1 3')
    assert.equal((await status(sock.path)).state, 'serving')
  } finally {
    sock.cleanup()
  }
})
