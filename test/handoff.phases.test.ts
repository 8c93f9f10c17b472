/**
 * The pause by phase (issue 11 item 3): both sides mark their clock at each step of a real handoff
 * between two processes, and both records carry the whole breakdown, ordered and adding up to no
 * more than the pause (up to COMMIT) and the downtime (up to SERVING).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { status } from '../src/handoff/index.ts'
import { inodeAt, untilMoved, watchPath } from '../src/handoff/pathwatch.ts'
import { phasesOf } from '../src/handoff/phases.ts'
import { parseCommitReply, parseServing } from '../src/handoff/protocol.ts'
import type { HandoffRecord, PausePhases } from '../src/handoff/types.ts'
import { LineClient, startService, tempSocket, type Service } from './fixtures/handoff-harness.ts'

const services: Service[] = []
after(() => { for (const s of services) s.kill() })

const BEFORE_COMMIT = ['quiesce', 'state', 'adopt', 'ready', 'commit'] as const

/** Every phase up to SERVING present and not negative; they add up to at most the pause and the downtime. */
function checkPhases (r: HandoffRecord, pauseMs: number): PausePhases {
  const p = r.phases
  assert.ok(p !== undefined, 'the record has no phases')
  for (const k of [...BEFORE_COMMIT, 'serving'] as const) {
    assert.equal(typeof p[k], 'number', `phase ${k} missing: ${JSON.stringify(p)}`)
    assert.ok((p[k] as number) >= 0, `phase ${k} is negative: ${JSON.stringify(p)}`)
  }
  const toCommit = BEFORE_COMMIT.reduce((n, k) => n + (p[k] as number), 0)
  // 1 ns of rounding per phase at most: each phase is a whole number of ns.
  assert.ok(toCommit <= pauseMs + 1e-5, `phases to COMMIT add up to ${toCommit} ms, more than the pause ${pauseMs} ms`)
  assert.ok(toCommit + (p.serving as number) <= (r.downtimeMs as number) + 1e-5, `phases to SERVING add up to more than the downtime: ${JSON.stringify(r)}`)
  return p
}

test('a real handoff: both records break the pause down by phase, in order, within the pause', async () => {
  const sock = tempSocket()
  try {
    const gen1 = startService({ HANDOFF_SOCK: sock.path })
    services.push(gen1)
    const { port } = await gen1.wait('listening') as unknown as { port: number }
    await gen1.wait('serving')
    const c = new LineClient(port)
    assert.equal(await c.request('INC 1'), '1 1')
    const gen2 = startService({ HANDOFF_SOCK: sock.path })
    services.push(gen2)
    await gen2.wait('serving')
    const mine = (await gen1.wait('handedOff')).info as HandoffRecord
    // The predecessor's record: its own phases, and the successor's from SERVING; no gate opening.
    const p = checkPhases(mine, mine.pauseMs)
    assert.equal(p.open, null)
    // The successor's record, as pagegift status shows it: the predecessor's marks came in COMMIT.
    const theirs = (await status(sock.path, { retryMs: 2000 })).history.at(-1) as HandoffRecord
    const s = checkPhases(theirs, mine.pauseMs)
    assert.equal(typeof s.open, 'number')
    for (const k of BEFORE_COMMIT) assert.equal(s[k], p[k], `phase ${k} differs between the two records`)
    assert.equal(await c.request('INC 1'), '2 2')
    c.close()
  } finally {
    sock.cleanup()
  }
})

test('phasesOf: a mark read a little late by its sender never makes the next phase negative; missing marks are null', () => {
  const p = phasesOf({ stopped: 1000n, quiesced: 2000n, stateSent: 5000n, adopted: 4000n, ready: 9000n, commit: 10_000n, serving: 12_000n })
  assert.deepEqual(p, { quiesce: 0.001, state: 0.003, adopt: 0, ready: 0.004, commit: 0.001, serving: 0.002, open: null })
  const old = phasesOf({ stopped: 0n, quiesced: 1000n, stateSent: 2000n, commit: 3000n, serving: 4000n })
  assert.equal(old.adopt, null)
  assert.equal(old.ready, null)
  assert.equal(old.commit, 0.001)
})

test('the marks a peer sends are validated: absent is fine (an older release), malformed is a protocol error', () => {
  assert.deepEqual(parseServing({ t: 'serving', v: 2, servingAt: '5' }, 2).at, {})
  assert.deepEqual(parseServing({ t: 'serving', v: 2, servingAt: '5', marks: { adopted: '3', ready: '4' } }, 2).at, { adopted: 3n, ready: 4n })
  for (const marks of [{ adopted: 3 }, { ready: '-1' }, 'x', null]) {
    assert.throws(() => parseServing({ t: 'serving', v: 2, servingAt: '5', marks }, 2), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
  }
  const c = parseCommitReply({ t: 'commit', v: 2, marks: { stopped: '1', quiesced: '2', stateSent: '3', commit: '4' } }, 2)
  assert.ok(c.t === 'commit')
  assert.deepEqual((c as { at: unknown }).at, { stopped: 1n, quiesced: 2n, stateSent: 3n, commit: 4n })
  assert.throws(() => parseCommitReply({ t: 'commit', v: 2, marks: { commit: 'soon' } }, 2), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
})

/** A file `h.sock` (holding `text`) in a new temporary directory, removed after `fn`. */
async function withFile (text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-path-'))
  const path = join(dir, 'h.sock')
  writeFileSync(path, text)
  try {
    await fn(path)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('watchPath wakes on a rename of the watched path, long before its timer', async () => {
  await withFile('', async (path) => {
    const w = watchPath(path)
    try {
      const t0 = Date.now()
      const woke = w.next(10_000)
      setTimeout(() => renameSync(path, path + '.retired'), 20)
      await woke
      assert.ok(Date.now() - t0 < 5000, `woke after ${Date.now() - t0} ms, by the timer rather than the rename`)
    } finally {
      w.close()
    }
  })
})

test('untilMoved resolves soon after another file is renamed over the path, and at its deadline if none is', async () => {
  await withFile('old', async (path) => {
    const ino = inodeAt(path)
    let t0 = Date.now()
    await untilMoved(path, ino, 150)
    const waited = Date.now() - t0
    assert.ok(waited >= 140 && waited < 5000, `with nothing renamed it waits out its 150 ms (waited ${waited} ms)`)
    writeFileSync(path + '.new', 'new')
    t0 = Date.now()
    setTimeout(() => renameSync(path + '.new', path), 30)
    await untilMoved(path, ino, 10_000)
    assert.notEqual(inodeAt(path), ino, 'the path names the new file')
    assert.ok(Date.now() - t0 < 2000, `it noticed the swap after ${Date.now() - t0} ms, not at its 10 s deadline`)
    // Already moved (or never ours): no wait at all.
    t0 = Date.now()
    await untilMoved(path, ino, 10_000)
    await untilMoved(path, null, 10_000)
    assert.ok(Date.now() - t0 < 1000)
  })
})
