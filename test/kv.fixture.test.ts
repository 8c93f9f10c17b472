import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { withUpgradableKv } from './fixtures/kv-proc.ts'

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }

test('withUpgradableKv: gen, port and pid follow an upgrade; when the body throws, the error goes through, every generation has exited and the directory is gone', async () => {
  let dir = ''
  const pids: number[] = []
  await assert.rejects(withUpgradableKv('kv-fixture-', ['--databases', '4'], async (kv) => {
    dir = kv.dir
    assert.ok(existsSync(kv.args[3]), 'the handoff socket is in the directory')
    assert.deepEqual(kv.args.slice(4), ['--databases', '4'])
    const { port, pid, gen } = kv
    pids.push(pid)
    const next = await kv.upgrade()
    pids.push(next.pid)
    assert.equal(kv.gen, next)
    assert.notEqual(kv.gen, gen)
    assert.equal(kv.pid, next.pid)
    assert.notEqual(kv.pid, pid)
    assert.equal(kv.port, port)
    throw new Error('the body failed')
  }), /the body failed/)
  assert.equal(pids.length, 2)
  for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still runs`)
  assert.notEqual(dir, '')
  assert.equal(existsSync(dir), false, `${dir} is left behind`)
})
