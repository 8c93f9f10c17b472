/** prime(): both sides of a handoff rehearsed in memory, once per process, leaving no fd or mapping behind. */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { test } from 'node:test'
import { prime } from '../src/handoff/index.ts'

/** Open fds as "number -> target"; an fd that closes between two listings is skipped. */
function fds (): Set<string> {
  const out = new Set<string>()
  for (const n of readdirSync('/proc/self/fd')) {
    try { out.add(`${n} -> ${readlinkSync(`/proc/self/fd/${n}`)}`) } catch {}
  }
  return out
}
const mappings = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('pagegift')).length

test('prime() rehearses a whole handoff once, and cleans up after itself', async () => {
  const before = { fds: fds(), maps: mappings() }
  assert.equal(await prime(), true)
  assert.equal(await prime(), true, 'later calls share the first')
  await new Promise((resolve) => setTimeout(resolve, 50))
  // Only new fds count: the runtime may close one of its own meanwhile (CI saw 28 -> 27).
  assert.deepEqual([...fds()].filter((f) => !before.fds.has(f)), [])
  assert.equal(mappings(), before.maps)
})
