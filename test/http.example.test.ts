/** The README's Express example (examples/http-express.ts) across an upgrade: the cache entry survives, the connection too. */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { Client } from 'undici'
import { exited, root, sleep } from './fixtures/http-harness.ts'
import { freePort } from '../tools/kv/procs.ts'

const children: ChildProcess[] = []
after(() => { for (const c of children) c.kill('SIGKILL') })

test('README example: a value put in generation 1 is served by generation 2 from the handed-over cache', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-http-ex-'))
  const env = { ...process.env, SOCK: join(dir, 'app.sock'), PORT: String(await freePort()) }
  const start = (): ChildProcess => {
    const c = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples', 'http-express.ts')], { cwd: root, env, stdio: 'ignore' })
    children.push(c)
    return c
  }
  try {
    const g1 = start()
    const client = new Client(`http://127.0.0.1:${env.PORT}`)
    let connects = 0
    client.on('connect', () => { connects++ })
    const ask = async (method: 'GET' | 'PUT', path: string, body?: string): Promise<string> => {
      for (let i = 0; ; i++) {
        try {
          const r = await client.request({ method, path, body, headers: body !== undefined ? { 'content-type': 'text/plain' } : {} })
          return await r.body.text()
        } catch (err) {
          if (i > 300) throw err
          await sleep(50)
        }
      }
    }
    assert.equal(await ask('PUT', '/item/a', 'apple'), 'generation 1')
    const g2 = start()
    const gone = exited(g1.pid as number, 60_000)
    let done = false
    void gone.then(() => { done = true })
    while (!done) { // keep the connection busy (an idle one would hit the keep-alive timeout while generation 2 loads)
      assert.equal(await ask('GET', '/item/a'), 'apple')
      await sleep(100)
    }
    await gone
    assert.equal(await ask('GET', '/item/a'), 'apple')
    assert.equal(await ask('PUT', '/item/b', 'banana'), 'generation 2')
    assert.equal(connects, 1)
    g2.kill('SIGKILL')
    await client.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
