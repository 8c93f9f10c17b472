/** SHUTDOWN: Redis's options, its refusal inside MULTI, and a save that fails keeping the server up. */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KvClient } from '../src/kv/client.ts'
import { exitOf, startKv, type KvProc, replyText as str } from './fixtures/kv-proc.ts'

const dir = mkdtempSync(join(tmpdir(), 'pagegift-kv-shutdown-'))
const procs: KvProc[] = []
after(async () => {
  for (const p of procs) await p.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function serve (args: string[] = []): Promise<{ kv: KvProc, c: KvClient }> {
  const kv = await startKv(['--port', '0', ...args])
  procs.push(kv)
  return { kv, c: await KvClient.connect(kv.port) }
}

test('inside MULTI SHUTDOWN is refused and aborts the transaction; bad options get Redis\'s errors; COMMAND INFO as Redis 7', async () => {
  const { c } = await serve()
  assert.deepEqual((await c.pipeline([['MULTI'], ['SET', 'foo', 'bar'], ['SHUTDOWN'], ['EXEC'], ['GET', 'foo']])).map(str),
    ['OK', 'QUEUED', 'ERR:ERR Command not allowed inside a transaction', 'ERR:EXECABORT Transaction discarded because of previous errors.', null])
  assert.deepEqual((await c.pipeline([['SHUTDOWN', 'SAVE', 'NOSAVE'], ['SHUTDOWN', 'LATER'], ['SHUTDOWN', 'ABORT'], ['SHUTDOWN', 'ABORT', 'NOW']])).map(str),
    ['ERR:ERR syntax error', 'ERR:ERR syntax error', 'ERR:ERR No shutdown in progress.', 'ERR:ERR syntax error'])
  const info = str(await c.call('COMMAND', 'INFO', 'shutdown')) as unknown[][]
  assert.deepEqual(info[0].slice(0, 3), ['shutdown', -1, ['admin', 'noscript', 'loading', 'stale', 'no_multi', 'allow_busy']])
  await c.close()
})

test('SHUTDOWN saves to --rdb-out and exits 0; SHUTDOWN NOSAVE exits without saving', async () => {
  for (const [flag, saved] of [[[], true], [['NOSAVE'], false]] as const) {
    const out = join(dir, `out-${saved ? 'save' : 'nosave'}.rdb`)
    const { kv, c } = await serve(['--rdb-out', out])
    await c.call('SET', 'k', 'v')
    c.send('SHUTDOWN', ...flag)
    await exitOf(kv.proc, 20_000)
    assert.equal(kv.proc.exitCode, 0, kv.output())
    assert.equal(existsSync(out), saved, `${flag.join(' ')}: saved ${String(existsSync(out))}`)
    await c.close()
  }
})

test('SHUTDOWN SAVE with nowhere to save keeps serving (an error); with FORCE it stops anyway', async () => {
  const { kv, c } = await serve()
  assert.deepEqual((await c.pipeline([['SHUTDOWN', 'SAVE'], ['PING']])).map(str), ['ERR:ERR Errors trying to SHUTDOWN. Check logs.', 'PONG'])
  c.send('SHUTDOWN', 'SAVE', 'FORCE')
  await exitOf(kv.proc, 20_000)
  assert.equal(kv.proc.exitCode, 0, kv.output())
  await c.close()
})
