/** The README "Live upgrades" example (test/fixtures/handoff-readme.ts) survives `pagegift upgrade`. */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { LineClient, root, sleep, tempSocket } from './fixtures/handoff-harness.ts'
import { status } from '../src/handoff/index.ts'
import { freePort } from '../tools/kv/procs.ts'

const example = join(root, 'test', 'fixtures', 'handoff-readme.ts')
const pids: number[] = []
after(() => { for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} } })

async function exited (c: ChildProcess): Promise<number | null> { return await new Promise((resolve) => c.once('exit', resolve)) }

for (const transport of ['tcp', 'unix'] as const) test(`the README example keeps its count and its clients across two upgrades (${transport})`, async () => {
  const sock = tempSocket()
  // On a Unix socket the path must survive too: libuv unlinks it when the old server's handle closes.
  const port: number | string = transport === 'tcp' ? await freePort() : `${sock.path}.service`
  const env = { ...process.env, SOCK: sock.path, ...(typeof port === 'number' ? { PORT: String(port) } : { LISTEN_PATH: port }) }
  try {
    const gen1 = spawn(process.execPath, ['--import', 'tsx', example], { cwd: root, env: { ...env, VERSION: 'v1' }, stdio: ['ignore', 'ignore', 'pipe'] })
    pids.push(gen1.pid as number)
    let err = ''
    gen1.stderr.on('data', (d) => { err += String(d) })
    for (let i = 0; i < 200 && !err.includes('serving on'); i++) await sleep(50)
    assert.match(err, /generation 1 serving on/)
    const c = new LineClient(port)
    assert.equal(await c.request('a'), '1 1')
    for (const version of ['v2', 'v3']) {
      const up = spawn(process.execPath, [join(root, 'bin', 'pagegift.js'), 'upgrade', sock.path, '--', process.execPath, '--import', 'tsx', example], { cwd: root, env: { ...env, VERSION: version }, stdio: 'ignore' })
      assert.equal(await exited(up), 0)
      const st = await status(sock.path, { retryMs: 1000 })
      pids.push(st.pid)
      assert.equal(st.version, version)
    }
    assert.equal(await c.request('b'), '3 2')
    const d = new LineClient(port)
    assert.equal(await d.request('c'), '3 3')
    c.close()
    d.close()
  } finally {
    sock.cleanup()
  }
})
