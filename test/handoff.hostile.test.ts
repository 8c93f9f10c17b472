/**
 * Guarantee 5 (hostile or broken peers), with real processes. Each attack gets an error or a timeout;
 * the serving generation never crashes, hangs or leaks fds, and rolls back every handoff it began.
 * A hostile predecessor cannot crash or hang a successor either.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmodSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { after, describe, test } from 'node:test'
import { listen, type Channel } from '../src/index.ts'
import { fdCount, LineClient, root, sleep, startService, tempSocket, type Service } from './fixtures/handoff-harness.ts'

const services: Service[] = []
after(() => { for (const s of services) s.kill() })

async function hostile (sock: string, attack: string): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test', 'fixtures', 'handoff-hostile.ts'), attack], { cwd: root, env: { ...process.env, HANDOFF_SOCK: sock }, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => { out += String(d) })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  assert.equal(code, 0, `hostile ${attack} exited ${code}: ${out}`)
  return JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>
}

const expectations: [string, Record<string, unknown>, boolean][] = [
  ['garbage', { outcome: 'refused', code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' }, false],
  ['wrong-version', { outcome: 'refused', code: 'ERR_PAGEGIFT_HANDOFF_VERSION' }, false],
  ['truncated', { outcome: 'closed', code: 'ERR_PAGEGIFT_PEER_CLOSED' }, false],
  ['wire-version', { outcome: 'closed', code: 'ERR_PAGEGIFT_PEER_CLOSED' }, false],
  ['fd-flood', { outcome: 'status' }, false],
  ['stall', { outcome: 'closed', code: 'ERR_PAGEGIFT_PEER_CLOSED' }, false],
  ['stall-after-hello', { outcome: 'abort', code: 'ERR_PAGEGIFT_HANDOFF_TIMEOUT' }, true],
  ['bad-prepared', { outcome: 'abort', code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' }, true],
  ['bad-ready', { outcome: 'abort', code: 'ERR_PAGEGIFT_HANDOFF_VERSION' }, true],
]

describe('hostile successors and observers', () => {
  const sock = tempSocket()
  after(() => sock.cleanup())
  let gen1: Service
  let client: LineClient
  let fdsBefore = 0
  let resumes = 0
  let count = 1

  test('setup: a serving generation with a client', async () => {
    gen1 = startService({ HANDOFF_SOCK: sock.path, HANDOFF_TIMEOUT_MS: '800', HANDOFF_HELLO_TIMEOUT_MS: '500' })
    services.push(gen1)
    const { port } = await gen1.wait('listening') as unknown as { port: number }
    await gen1.wait('serving')
    client = new LineClient(port)
    assert.equal(await client.request('INC 3'), '1 1')
    await sleep(100)
    fdsBefore = fdCount(gen1.pid)
  })

  for (const [attack, expected, rollsBack] of expectations) {
    test(`${attack}: ${String(expected.outcome)} ${String(expected.code ?? '')}`, async () => {
      const result = await hostile(sock.path, attack)
      for (const [k, v] of Object.entries(expected)) assert.equal(result[k], v, `${attack}: ${JSON.stringify(result)}`)
      if (rollsBack) {
        resumes++
        for (let i = 0; i < 50 && gen1.events.filter((e) => e.event === 'resumed').length < resumes; i++) await sleep(20)
      }
      assert.equal(gen1.events.filter((e) => e.event === 'resumed').length, resumes)
      assert.equal(gen1.child.exitCode, null, 'the serving generation is alive')
      assert.equal(await client.request('INC 3'), `1 ${++count}`)
    })
  }

  test('another uid is refused', async () => {
    // Open the directory and socket to everyone, so that only the peer-credential check stands in the way.
    chmodSync(dirname(sock.path), 0o777)
    chmodSync(sock.path, 0o777)
    const result = await hostile(sock.path, 'other-uid')
    // The peer-credential check closes the connection at accept: the first send or receive finds it closed.
    assert.equal(result.code, 'ERR_PAGEGIFT_PEER_CLOSED', JSON.stringify(result))
    assert.equal(await client.request('INC 3'), `1 ${++count}`)
  })

  test('no fd leaked, and a real successor still works', async () => {
    for (let i = 0; i < 50 && fdCount(gen1.pid) > fdsBefore; i++) await sleep(20)
    assert.equal(fdCount(gen1.pid), fdsBefore)
    const gen2 = startService({ HANDOFF_SOCK: sock.path })
    services.push(gen2)
    assert.equal((await gen2.wait('serving')).generation, 2)
    assert.equal(await client.request('INC 3'), `2 ${++count}`)
    client.close()
  })
})

describe('a hostile predecessor', () => {
  async function fakePredecessor (sock: string, behave: (ch: Channel) => Promise<void>): Promise<() => Promise<void>> {
    const server = await listen(sock)
    server.on('connection', (ch: Channel) => { void behave(ch).catch(() => {}) })
    return async () => await server.close()
  }

  const cases: [string, (ch: Channel) => Promise<void>, string][] = [
    ['speaks another version', async (ch) => { await ch.recv(); await ch.send({ t: 'offer', v: 7, regions: [] }) }, 'ERR_PAGEGIFT_HANDOFF_VERSION'],
    ['sends a STATE whose handle fd is out of range', async (ch) => {
      await ch.recv()
      await ch.send({ t: 'offer', v: 1, part: 0, parts: 1, json: JSON.stringify({ t: 'offer', v: 1, regions: [] }) })
      await ch.recv()
      const state = { t: 'state', v: 1, generation: 2, from: { pid: 1, version: '', generation: 1 }, stoppedAt: '1', regions: [], handles: [{ name: 'x', kind: 'fd', fd: 3, pending: '', info: {} }], meta: null, history: [] }
      await ch.send({ t: 'state', v: 1, part: 0, parts: 1, json: JSON.stringify(state) })
    }, 'ERR_PAGEGIFT_HANDOFF_PROTOCOL'],
    ['sends a truncated STATE', async (ch) => {
      await ch.recv()
      await ch.send({ t: 'offer', v: 1, part: 0, parts: 1, json: JSON.stringify({ t: 'offer', v: 1, regions: [] }) })
      await ch.recv()
      await ch.send({ t: 'state', v: 1, part: 0, parts: 2, json: '{"t":"state",' })
      ch.close()
    }, 'ERR_PAGEGIFT_HANDOFF_PREDECESSOR_GONE'],
    ['stalls', async (ch) => { await ch.recv(); await new Promise(() => {}) }, 'ERR_PAGEGIFT_TIMEOUT'],
  ]
  for (const [label, behave, code] of cases) {
    test(`that ${label}: the successor fails with ${code}, no hang`, async () => {
      const sock = tempSocket()
      const close = await fakePredecessor(sock.path, behave)
      try {
        const successor = startService({ HANDOFF_SOCK: sock.path, HANDOFF_TIMEOUT_MS: '700' })
        services.push(successor)
        const failed = await successor.wait('joinFailed', 10_000)
        assert.equal(failed.code, code, JSON.stringify(failed))
        assert.equal((await successor.exited()).code, 3)
      } finally {
        await close()
        sock.cleanup()
      }
    })
  }
})
