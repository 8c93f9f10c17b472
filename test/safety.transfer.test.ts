/**
 * Giftable buffers cannot be transferred to another owner: a transfer copies them, so release()
 * or GC of the original can never unmap memory that another ArrayBuffer still reads (issue 9, item 1).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { fixtures } from './helpers.ts'

function run (how: string): { status: number | null, signal: NodeJS.Signals | null, out: unknown } {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(fixtures, 'safety-transfer.ts'), how], { encoding: 'utf8', timeout: 60_000 })
  const line = r.stdout.trim().split('\n').pop() ?? ''
  return { status: r.status, signal: r.signal, out: line === '' ? undefined : JSON.parse(line) }
}

for (const how of ['clone-release', 'clone-gc']) {
  test(`structuredClone with transfer, then ${how.slice(6)} of the original: the clone's data stays valid`, () => {
    const r = run(how)
    assert.equal(r.signal, null, 'the child was not killed by a signal (SIGSEGV = use after unmap)')
    assert.equal(r.status, 0)
    assert.deepEqual(r.out, { length: 1 << 20, last: 0x5a })
  })
}

for (const how of ['worker-release', 'worker-gc']) {
  test(`postMessage to a worker with transfer, then ${how.slice(7)} of the original: the worker's data stays valid`, () => {
    const r = run(how)
    assert.equal(r.signal, null, 'the child was not killed by a signal (SIGSEGV = use after unmap)')
    assert.equal(r.status, 0)
    assert.deepEqual(r.out, { last: 0x5a })
  })
}
