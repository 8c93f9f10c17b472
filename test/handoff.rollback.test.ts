/**
 * Guarantee 1 (rollback) and 2 (predecessor dies), with real processes: a successor SIGKILLed at each
 * step before commit leaves the predecessor serving with its region intact, its open connections
 * continuing and the connections that arrived meanwhile answered; a predecessor that dies before
 * STATE lets the successor start afresh, and one that dies after STATE leaves it in charge.
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { status } from '../src/handoff/index.ts'
import { fdCount, LineClient, sleep, startService, tempSocket, type Service } from './fixtures/handoff-harness.ts'

const services: Service[] = []
const clients: LineClient[] = []
after(() => { for (const s of services) s.kill(); for (const c of clients) c.close() })

function service (env: Record<string, string>): Service {
  const s = startService(env)
  services.push(s)
  return s
}

function client (port: number): LineClient {
  const c = new LineClient(port)
  clients.push(c)
  return c
}

const steps = [
  ['before HELLO', 'successor:connected'],
  ['after HELLO', 'successor:hello-sent'],
  ['after STATE is received', 'successor:state-received'],
  ['after adoption', 'app:adopted'],
  ['just before READY', 'successor:before-ready'],
] as const

describe('a successor killed before commit', () => {
  for (const [label, step] of steps) {
    test(`${label}: the predecessor resumes, nothing lost or refused`, async () => {
      const sock = tempSocket()
      try {
        const gen1 = service({ HANDOFF_SOCK: sock.path })
        const { port } = await gen1.wait('listening') as unknown as { port: number }
        await gen1.wait('serving')
        const a = client(port)
        assert.equal(await a.request('INC 5'), '1 1')
        const fdsBefore = fdCount(gen1.pid)

        const successor = service({ HANDOFF_SOCK: sock.path, HANDOFF_KILL_AT: step, HANDOFF_KILL_DELAY_MS: '400' })
        await successor.wait('step')
        // While the successor sits at the step: an open connection asks, and a new one arrives.
        a.send('INC 5')
        const b = client(port)
        await b.connected()
        b.send('INC 5')
        const exit = await successor.exited()
        assert.equal(exit.signal, 'SIGKILL')
        if (step !== 'successor:connected') {
          const resumed = await gen1.wait('resumed')
          assert.equal(resumed.code, 'ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE')
        }
        const answers = [await a.line(), await b.line()].sort()
        assert.deepEqual(answers, ['1 2', '1 3'])
        assert.equal(await a.request('INC 5'), '1 4', 'the region kept every increment')
        assert.equal(await b.request('GEN'), '1')
        const st = await status(sock.path)
        assert.equal(st.generation, 1)
        assert.equal(st.state, 'serving')
        assert.equal(st.pid, gen1.pid)
        // The status channel closes just after its answer: give it a moment.
        for (let i = 0; i < 50 && fdCount(gen1.pid) > fdsBefore + 1; i++) await sleep(20)
        assert.ok(fdCount(gen1.pid) <= fdsBefore + 1, `fds: ${fdsBefore} before, ${fdCount(gen1.pid)} after (one new client)`)
        assert.equal(a.closed || b.closed, false)

        // And the next successor still works.
        const gen2 = service({ HANDOFF_SOCK: sock.path })
        await gen2.wait('serving')
        assert.equal(await a.request('INC 5'), '2 5')
      } finally {
        sock.cleanup()
      }
    })
  }
})

describe('a predecessor that dies mid-handoff', () => {
  test('before STATE: the successor fails clearly, then starts as generation 1', async () => {
    const sock = tempSocket()
    try {
      const gen1 = service({ HANDOFF_SOCK: sock.path, HANDOFF_KILL_AT: 'predecessor:quiesced' })
      const { port } = await gen1.wait('listening') as unknown as { port: number }
      await gen1.wait('serving')
      const next = service({ HANDOFF_SOCK: sock.path, HANDOFF_RETRY_JOIN: '1', HANDOFF_PORT: String(port) })
      const failed = await next.wait('joinFailed')
      assert.equal(failed.code, 'ERR_PAGEGIFT_HANDOFF_PREDECESSOR_GONE')
      assert.match(String(failed.reason), /join\(\) again/)
      const serving = await next.wait('serving')
      assert.equal(serving.generation, 1)
      const c = client(port)
      assert.equal(await c.request('INC 1'), '1 1')
    } finally {
      sock.cleanup()
    }
  })

  test('after STATE: the successor owns everything and takes over', async () => {
    const sock = tempSocket()
    try {
      const gen1 = service({ HANDOFF_SOCK: sock.path, HANDOFF_KILL_AT: 'predecessor:state-sent' })
      const { port } = await gen1.wait('listening') as unknown as { port: number }
      await gen1.wait('serving')
      const a = client(port)
      assert.equal(await a.request('INC 7'), '1 1')
      a.send('INC 7')
      await sleep(50)
      const gen2 = service({ HANDOFF_SOCK: sock.path })
      const serving = await gen2.wait('serving')
      assert.equal(serving.generation, 2)
      assert.equal((await gen1.exited()).signal, 'SIGKILL')
      assert.equal(await a.line(), '1 2')
      assert.equal(await a.request('INC 7'), '2 3', 'the open connection and the region moved')
      const b = client(port)
      assert.equal(await b.request('INC 7'), '2 4')
      const st = await status(sock.path, { retryMs: 1000 })
      assert.equal(st.generation, 2)
      assert.equal(st.pid, gen2.pid)
    } finally {
      sock.cleanup()
    }
  })
})
