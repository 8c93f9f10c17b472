/**
 * Guarantee 4 (back-to-back), short form for `npm test`: 10 upgrades in a row under continuous load.
 * Every request is answered exactly once (each answer is the exact count), no client is disconnected,
 * and the live generation's fds and RSS stay flat. test/soak/handoff.soak.test.ts runs 100.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { assertFlat, backToBack } from './fixtures/handoff-backtoback.ts'

test('10 upgrades in a row under load: exactly once, no disconnects, flat fds and RSS', async () => {
  const r = await backToBack(10)
  assert.ok(r.answered > 50, `only ${r.answered} requests ran`)
  assertFlat(r)
})
