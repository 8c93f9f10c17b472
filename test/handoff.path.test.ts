/**
 * The handoff socket path changes hands without waiting: a successor that sent SERVING swaps its
 * own socket in over the path, so its ready() (which its first clients wait for) never waits for
 * the predecessor to let go, and the path names a live listener throughout.
 */
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { after, test } from 'node:test'
import { status } from '../src/handoff/index.ts'
import { LineClient, startService, tempSocket, type Service } from './fixtures/handoff-harness.ts'

const services: Service[] = []
after(() => { for (const s of services) s.kill() })

test('a predecessor that never reads SERVING does not hold up its successor: the successor serves and answers status at once', async () => {
  const sock = tempSocket()
  try {
    const env = { HANDOFF_SOCK: sock.path, HANDOFF_TIMEOUT_MS: '30000' }
    const gen1 = startService({ ...env, HANDOFF_STALL_AT: 'predecessor:committed' })
    services.push(gen1)
    const { port } = await gen1.wait('listening') as unknown as { port: number }
    await gen1.wait('serving')
    const c = new LineClient(port)
    assert.equal(await c.request('INC 1'), '1 1')
    const gen2 = startService(env)
    services.push(gen2)
    // Before, the successor's ready() waited (up to its 30 s timeout) for the stalled predecessor to let go of the path.
    const t0 = Date.now()
    await gen2.wait('serving', 15_000)
    assert.ok(Date.now() - t0 < 15_000)
    assert.equal(await c.request('INC 1'), '2 2')
    const st = await status(sock.path, { timeoutMs: 5000 })
    assert.equal(st.generation, 2)
    assert.equal(st.pid, gen2.pid)
    c.close()
  } finally {
    sock.cleanup()
  }
})

test('after back-to-back upgrades the path names the newest generation and nothing is left beside it', async () => {
  const sock = tempSocket()
  try {
    const env = { HANDOFF_SOCK: sock.path }
    let current = startService(env)
    services.push(current)
    await current.wait('serving')
    for (let g = 2; g <= 4; g++) {
      const next = startService(env)
      services.push(next)
      assert.equal((await next.wait('serving')).generation, g)
      await current.wait('handedOff')
      await current.exited()
      current = next
    }
    const st = await status(sock.path, { timeoutMs: 5000 })
    assert.equal(st.generation, 4)
    assert.deepEqual(readdirSync(dirname(sock.path)).sort(), ['h.sock', 'h.sock.key'])
  } finally {
    sock.cleanup()
  }
})

test('a successor rolled back while its app stalls lets go of the name beside the path at once: the next one swaps in', async () => {
  const sock = tempSocket()
  try {
    const env = { HANDOFF_SOCK: sock.path, HANDOFF_PAUSE_BUDGET_MS: '300' }
    const gen1 = startService(env)
    services.push(gen1)
    const { port } = await gen1.wait('listening') as unknown as { port: number }
    await gen1.wait('serving')
    const c = new LineClient(port)
    assert.equal(await c.request('INC 1'), '1 1')
    // It binds <path>.new before the pause (successor.ts), then hangs after adopting, past gen1's pause budget.
    const stuck = startService({ ...env, HANDOFF_STALL_AT: 'app:adopted' })
    services.push(stuck)
    await gen1.wait('resumed', 15_000)
    assert.equal(await c.request('INC 1'), '1 2')
    const until = Date.now() + 5000
    while (readdirSync(dirname(sock.path)).includes('h.sock.new') && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.deepEqual(readdirSync(dirname(sock.path)).sort(), ['h.sock', 'h.sock.key'])
    assert.equal(stuck.child.exitCode, null, 'the stalled successor is still alive')
    let current = gen1
    for (let g = 2; g <= 3; g++) {
      const next = startService(env)
      services.push(next)
      assert.equal((await next.wait('serving')).generation, g)
      await current.wait('handedOff')
      current = next
    }
    assert.equal(await c.request('INC 1'), '3 3')
    assert.equal((await status(sock.path, { timeoutMs: 5000 })).generation, 3)
  } finally {
    sock.cleanup()
  }
})
