/** Guarantee 4 at full length: 100 upgrades in a row under continuous load (`npm run test:soak`). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { assertFlat, backToBack } from '../fixtures/handoff-backtoback.ts'

test('100 upgrades in a row under load: exactly once, no disconnects, flat fds and RSS', { timeout: 600_000 }, async () => {
  const r = await backToBack(100)
  assert.ok(r.answered > 500, `only ${r.answered} requests ran`)
  assertFlat(r)
  const sorted = [...r.downtimes].sort((a, b) => a - b)
  process.stdout.write(`# 100 upgrades: ${r.answered} requests, downtime median ${sorted[50].toFixed(2)} ms, max ${sorted[99].toFixed(2)} ms, fds ${Math.min(...r.fds)}..${Math.max(...r.fds)}\n`)
})
