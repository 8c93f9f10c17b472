/**
 * A status answer stays one message however long the service has run: its history of handoffs, each
 * listing a service's many regions, outgrew the 64 KiB frame after a few dozen upgrades, and
 * `pagegift status` then failed (one process, real handoffs over a real socket).
 */
import assert from 'node:assert/strict'
import { watch } from 'node:fs'
import { tmpdir } from 'node:os'
import { test } from 'node:test'
import { alloc, release } from '../src/index.ts'
import { join, status, type Generation } from '../src/handoff/index.ts'
import { boundStatus, fitRecord, STATUS_BUDGET } from '../src/handoff/report.ts'
import type { StatusReport } from '../src/handoff/types.ts'
import { describeStatus } from '../src/cli/status.ts'
import { MAX_JSON } from '../src/wire.ts'
import { tempSocket } from './fixtures/handoff-harness.ts'
import { fdCount, memfdMappings, settle, withTimeout } from './helpers.ts'

const SEGMENTS = 128
const HANDOFFS = 14

/** Offers and hands over `regions` (what it created or inherited), as a service with many map segments does. */
function contribute (gen: Generation, regions: Record<string, ArrayBuffer>): void {
  gen.offerRegions(() => regions).onHandoff(() => ({ regions }))
}

test(`status after ${HANDOFFS} handoffs of ${SEGMENTS} regions each fits one message, and says what it summed up`, async () => {
  const sock = tempSocket()
  // libuv opens one inotify fd per loop at its first fs.watch (the path swap watches) and keeps it: open it before counting.
  watch(tmpdir()).close()
  await settle()
  const fds = fdCount()
  const maps = memfdMappings()
  let regions: Record<string, ArrayBuffer> = Object.fromEntries(Array.from({ length: SEGMENTS }, (_, i) => [`segment-${String(i).padStart(4, '0')}`, alloc(4096)]))
  let gen = await join(sock.path, { exitOnHandoff: false })
  try {
    await gen.ready()
    contribute(gen, regions)
    for (let i = 0; i < HANDOFFS; i++) {
      const prev = gen
      const handedOff = new Promise((resolve) => prev.once('handedOff', resolve))
      gen = await withTimeout(join(sock.path, { exitOnHandoff: false }), 20_000, `join ${i}`)
      const inherited = gen.inherited?.regions ?? {}
      assert.equal(Object.keys(inherited).length, SEGMENTS)
      contribute(gen, inherited)
      await withTimeout(gen.ready(), 20_000, `ready ${i}`)
      await withTimeout(handedOff, 20_000, `handedOff ${i}`)
      await prev.close()
      for (const buf of Object.values(regions)) release(buf)
      regions = inherited
    }
    const report: StatusReport = await withTimeout(status(sock.path), 10_000, 'status')
    assert.ok(Buffer.byteLength(JSON.stringify(report)) <= MAX_JSON)
    assert.equal(report.generation, HANDOFFS + 1)
    assert.ok(report.history.length >= 1)
    const last = report.history[report.history.length - 1]
    assert.equal(last.generation, HANDOFFS + 1)
    assert.equal(last.regionCount, SEGMENTS)
    assert.deepEqual(last.regions, [{ name: `(${SEGMENTS} regions)`, bytes: SEGMENTS * 4096, path: 'share' }])
    // Every handoff is still there, or counted as left out.
    assert.equal(report.history.length + (report.omitted?.history ?? 0), HANDOFFS)
    assert.match(describeStatus(report), new RegExp(`generation ${HANDOFFS + 1}: .* in ${SEGMENTS} region\\(s\\) \\[share\\]`))
  } finally {
    await gen.close()
    for (const buf of Object.values(regions)) release(buf)
    sock.cleanup()
  }
  await settle()
  assert.equal(fdCount(), fds)
  assert.equal(memfdMappings(), maps)
})

test('a report with more history, regions and handles than one message holds is cut to fit, counting what it left out', () => {
  const name = (i: number): string => `${'x'.repeat(200)}-${i}`
  const record = { generation: 2, fromPid: 1, toPid: 2, version: 'v', at: new Date(0).toISOString(), downtimeMs: 1, pauseMs: 1, bytes: 0, regions: Array.from({ length: 256 }, (_, i) => ({ name: name(i), bytes: 4096, path: i % 2 === 0 ? 'share' as const : 'copy' as const })), handles: 0 }
  const report: StatusReport = {
    generation: 33, pid: 1, version: 'v', startedAt: new Date(0).toISOString(), uptimeMs: 0, state: 'serving',
    regions: Array.from({ length: 256 }, (_, i) => ({ name: name(i), bytes: 4096 })),
    handles: Array.from({ length: 4096 }, (_, i) => ({ name: name(i), kind: 'socket' })),
    history: Array.from({ length: 32 }, (_, i) => ({ ...record, generation: i + 2 })),
  }
  const out = boundStatus(report)
  assert.ok(Buffer.byteLength(JSON.stringify(out)) <= STATUS_BUDGET)
  assert.ok(out.omitted !== undefined)
  assert.equal(out.history.length + out.omitted.history, 32)
  assert.equal(out.regions.length + out.omitted.regions, 256)
  assert.equal(out.handles.length + out.omitted.handles, 4096)
  // The lists gave up room before the history did; the newest records are the ones kept, each summed up by path.
  assert.ok(out.history.length >= 16)
  assert.equal(out.history[out.history.length - 1].generation, 33)
  assert.deepEqual(out.history[0].regions.map((r) => [r.name, r.path]), [['(128 regions)', 'share'], ['(128 regions)', 'copy']])
  // One record alone (the watchers' 'committed' event) is summed up only when it would not fit.
  const big = { ...record, regions: record.regions.map((r, i) => ({ ...r, name: `${'y'.repeat(250)}-${i}` })) }
  const fitted = fitRecord(big)
  assert.equal(fitted.regionCount, 256)
  assert.ok(Buffer.byteLength(JSON.stringify(fitted)) <= STATUS_BUDGET)
  const few = { ...record, regions: record.regions.slice(0, 20) }
  assert.equal(fitRecord(few), few)
  // A report that fits is left as it is.
  const small = { ...report, regions: report.regions.slice(0, 2), handles: report.handles.slice(0, 2), history: [{ ...record, regions: record.regions.slice(0, 3) }] }
  assert.deepEqual(boundStatus(small), small)
})
