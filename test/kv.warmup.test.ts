/**
 * The start-up warm-up: commands of every type, one at a time and pipelined, then the live
 * upgrade's own paths rehearsed on its clients (export, adoption by a fresh server, thaw), with
 * nothing left behind.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { warmUp } from '../src/kv/warmup.ts'
import { memfdMappings, settledFdCount } from './helpers.ts'

test('warmUp() answers its commands, hands its clients through the rehearsal, and leaks no fd or mapping', async () => {
  const fds = await settledFdCount()
  const maps = memfdMappings()
  const warnings: string[] = []
  const write = process.stderr.write.bind(process.stderr)
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    warnings.push(String(chunk))
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest)
  }) as typeof process.stderr.write
  let report
  try {
    report = await warmUp(4, 60, 200)
  } finally {
    process.stderr.write = write
  }
  assert.deepEqual(warnings, [], 'the warm-up was not skipped')
  assert.ok(report.commands >= 4 * (60 + 200), `commands answered: ${report.commands}`)
  assert.equal(report.rehearsed, 4, 'the last rehearsal\'s server holds every client')
  assert.equal(await settledFdCount(), fds)
  assert.equal(memfdMappings(), maps)
})

test('PAGEGIFT_KV_WARMUP=0 skips it', async () => {
  process.env.PAGEGIFT_KV_WARMUP = '0'
  try {
    assert.deepEqual(await warmUp(), { commands: 0, rehearsed: 0 })
  } finally {
    delete process.env.PAGEGIFT_KV_WARMUP
  }
})
