/**
 * The successor's page-table fill (src/handoff/fill.ts): a region is walked to its end once, even
 * when it is added again (an offered region comes back with STATE), and a pause stops it between
 * jobs; resume() goes on. The real populate() is covered by the regions' tests; here the env counts.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PageFill } from '../src/handoff/fill.ts'
import type { Env } from '../src/handoff/env.ts'

/** An env whose populate() records each walk and, while `hold` is set, waits for release(). */
function countingEnv (): { env: Env, walks: ArrayBuffer[], hold: boolean, release: () => void } {
  const c = {
    walks: [] as ArrayBuffer[],
    hold: false,
    release: () => {},
    env: {} as Env,
  }
  c.env = {
    populate: async (buf: ArrayBuffer) => {
      c.walks.push(buf)
      if (c.hold) await new Promise<void>((resolve) => { c.release = resolve })
    },
  } as unknown as Env
  return c
}

test('PageFill: a filled region added again is not walked again; one queued twice is walked once', async () => {
  const c = countingEnv()
  const fill = new PageFill(c.env)
  const a = new ArrayBuffer(8)
  const b = new ArrayBuffer(8)
  fill.add([a, a, b])
  await fill.settled(1000)
  assert.deepEqual(c.walks, [a, b])
  fill.add([a, b])
  await fill.settled(1000)
  assert.deepEqual(c.walks, [a, b], 'both were filled to their end: nothing to walk')
  const d = new ArrayBuffer(8)
  fill.add([a, d])
  await fill.settled(1000)
  assert.deepEqual(c.walks, [a, b, d])
})

test('PageFill: paused, it stops after the job in flight and walks nothing new; resumed, it fills the cut region again', async () => {
  const c = countingEnv()
  const fill = new PageFill(c.env)
  const a = new ArrayBuffer(8)
  const b = new ArrayBuffer(8)
  c.hold = true
  fill.add([a, b])
  await new Promise((resolve) => setImmediate(resolve))
  fill.pause()
  c.release()
  await fill.settled(1000)
  assert.deepEqual(c.walks, [a], 'nothing after the job in flight')
  c.hold = false
  fill.add([b])
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(c.walks, [a], 'adding does not start a paused fill')
  fill.resume()
  await fill.settled(1000)
  assert.deepEqual(c.walks, [a, a, b], 'the region cut by the pause is walked again from its start, then the rest')
})
