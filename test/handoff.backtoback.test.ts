/**
 * Guarantee 4 (back-to-back), short form for `npm test`: 10 upgrades in a row under continuous load.
 * Every request is answered exactly once (each answer is the exact count), no client is disconnected,
 * and the live generation's fds and RSS stay flat. test/soak/handoff.soak.test.ts runs 100.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { assertFlat, backToBack } from './fixtures/handoff-backtoback.ts'

/** The fds of the first successor without the warm-up, to compare the warmed-up ones with. */
let plainFds = -1

test('10 upgrades in a row under load: exactly once, no disconnects, flat fds and RSS', async () => {
  const r = await backToBack(10)
  plainFds = r.fds[0]
  assert.ok(r.answered > 50, `only ${r.answered} requests ran`)
  assertFlat(r)
})

test('the same with the bench service\'s warm-up (HANDOFF_WARMUP): its rehearsal leaves no fd or memory behind', async () => {
  const r = await backToBack(5, { HANDOFF_WARMUP: '50' })
  assert.ok(r.answered > 25, `only ${r.answered} requests ran`)
  assertFlat(r)
  if (plainFds >= 0) assert.ok(r.fds[0] <= plainFds + 2, `a warmed-up successor holds ${r.fds[0]} fds, a plain one ${plainFds}`)
})
