/**
 * Defect 4: an upgrade across releases. Generation 1 runs the previous release (commit 202bb52,
 * protocol 1), from the package tarball in test/fixtures, and hands over live to this build; the
 * regions' layout versions are checked before anything pauses.
 *
 * The tarball is committed rather than made from git history, because a CI checkout may be shallow
 * (actions/checkout fetches one commit by default). It holds the old package.json and src/ only,
 * made with: `git archive 202bb52 package.json src | tar -x -C stage && (cd stage && npm pack)`.
 * The old package runs its TypeScript through tsx (this repo's dependency) and loads its addon from
 * build/: native/ and binding.gyp have not changed since 202bb52, so this build's addon serves it.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { status } from '../src/handoff/index.ts'
import { LineClient, root, startService, tempSocket, type Service } from './fixtures/handoff-harness.ts'

const services: Service[] = []
const clients: LineClient[] = []
let dir = ''
let oldLib = ''
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-oldrelease-'))
  execFileSync('tar', ['-xzf', join(root, 'test', 'fixtures', 'pagegift-0.1.0-202bb52.tgz'), '-C', dir], { timeout: 30_000 })
  oldLib = join(dir, 'package')
  symlinkSync(join(root, 'build'), join(oldLib, 'build'))
})
after(() => {
  for (const s of services) s.kill()
  for (const c of clients) c.close()
  if (dir !== '') rmSync(dir, { recursive: true, force: true })
})
function service (env: Record<string, string>): Service { const s = startService(env); services.push(s); return s }

test('the previous release hands over live to this build, which hands over to itself', async () => {
  const sock = tempSocket()
  try {
    const gen1 = service({ HANDOFF_SOCK: sock.path, HANDOFF_LIB: oldLib, HANDOFF_VERSION: 'v0.1.0' })
    const { port } = await gen1.wait('listening') as unknown as { port: number }
    await gen1.wait('serving')
    const c = new LineClient(port)
    clients.push(c)
    assert.equal(await c.request('INC 6'), '1 1')
    assert.equal(await c.request('INC 6'), '1 2')
    assert.equal(existsSync(`${sock.path}.key`), false, 'the previous release makes no key: it is the one serving')
    // This build reads the old region as layout 0 (undeclared) and writes layout 1 from now on.
    const gen2 = service({ HANDOFF_SOCK: sock.path, HANDOFF_VERSION: 'v0.2.0', HANDOFF_LAYOUT: '1:0,1' })
    const serving = await gen2.wait('serving')
    assert.equal(serving.generation, 2)
    assert.deepEqual(serving.layouts, { counters: 0 })
    assert.equal((await gen1.exited()).code, 0)
    assert.equal(await c.request('INC 6'), '2 3', 'the open connection and the region moved across releases')
    const d = new LineClient(port)
    clients.push(d)
    assert.equal(await d.request('INC 6'), '2 4')
    const st = await status(sock.path, { retryMs: 2000 })
    assert.equal(st.version, 'v0.2.0')
    assert.equal(st.history.at(-1)?.generation, 2)
    const gen3 = service({ HANDOFF_SOCK: sock.path, HANDOFF_VERSION: 'v0.2.1', HANDOFF_LAYOUT: '1' })
    const third = await gen3.wait('serving')
    assert.equal(third.generation, 3)
    assert.deepEqual(third.layouts, { counters: 1 })
    assert.equal(await c.request('INC 6'), '3 5')
    assert.equal(await d.request('INC 6'), '3 6')
  } finally {
    sock.cleanup()
  }
})

for (const [label, gen1Env] of [['the previous release', { HANDOFF_LIB: '' }], ['this build at layout 1', { HANDOFF_LAYOUT: '1' }]] as const) {
  test(`a region layout the successor cannot read (from ${label}) is refused before anything pauses`, async () => {
    const sock = tempSocket()
    try {
      const env: Record<string, string> = { HANDOFF_SOCK: sock.path, ...gen1Env }
      if (env.HANDOFF_LIB === '') env.HANDOFF_LIB = oldLib
      const gen1 = service(env)
      const { port } = await gen1.wait('listening') as unknown as { port: number }
      await gen1.wait('serving')
      const c = new LineClient(port)
      clients.push(c)
      assert.equal(await c.request('INC 1'), '1 1')
      const next = service({ HANDOFF_SOCK: sock.path, HANDOFF_LAYOUT: '2' })
      const failed = await next.wait('joinFailed')
      assert.equal(failed.code, 'ERR_PAGEGIFT_HANDOFF_LAYOUT')
      assert.match(String(failed.reason), /region 'counters' has layout [01].*this build reads layout 2 of it/)
      assert.equal(gen1.events.some((e) => e.event === 'quiesce'), false, 'refused at OFFER, before the predecessor paused')
      assert.equal(await c.request('INC 1'), '1 2')
    } finally {
      sock.cleanup()
    }
  })
}
