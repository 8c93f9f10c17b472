/** prime(): both sides of a handoff rehearsed in memory, once per process, leaving no fd or mapping behind. */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { prime } from '../src/handoff/index.ts'

const fds = (): number => readdirSync('/proc/self/fd').length
const mappings = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('pagegift')).length

test('prime() rehearses a whole handoff once, and cleans up after itself', async () => {
  const before = { fds: fds(), maps: mappings() }
  assert.equal(await prime(), true)
  assert.equal(await prime(), true, 'later calls share the first')
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(fds(), before.fds)
  assert.equal(mappings(), before.maps)
})
