/** within(): a wait that gives up at a deadline without failing, and leaves no timer behind. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { within } from '../src/within.ts'

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

test('within: the value in time, the fallback after the deadline, a rejection in time thrown; no timer outlives it', async () => {
  const before = timers()
  assert.equal(await within(Promise.resolve(7), 1000, 'late'), 7)
  assert.equal(timers(), before, 'the 1 s timer was cleared as soon as the value came')
  const t0 = Date.now()
  assert.equal(await within(new Promise(() => {}), 30, 'late'), 'late')
  assert.ok(Date.now() - t0 >= 25, 'it waited for the deadline')
  await assert.rejects(within(Promise.reject(new Error('boom')), 1000, 'late'), /boom/)
  assert.equal(timers(), before)
  // A rejection after the deadline is nobody's: no unhandled rejection (the test runner would fail on one).
  let reject: (err: Error) => void = () => {}
  assert.equal(await within(new Promise((_, rej) => { reject = rej }), 10, null), null)
  reject(new Error('too late'))
  await new Promise((resolve) => setImmediate(resolve))
})
