/**
 * Live upgrades with every type: a checked workload over strings, lists, sets, sorted sets and
 * hashes (in four databases, with TTLs), MULTI/EXEC and pub/sub runs across 10 live upgrades. Every
 * reply is checked as it comes, every message must arrive in order, and at the end every key's type,
 * value and TTL must match the workers' models, with no client error or dropped connection.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { startKv, type KvProc } from '../fixtures/kv-proc.ts'
import { TypesWorkload } from '../../tools/kv/mixed-types.ts'

const UPGRADES = Number(process.env.KV_TYPES_SOAK_UPGRADES ?? 10)

test(`every type, MULTI and pub/sub across ${UPGRADES} live upgrades: every key, type, TTL and message kept, no client error`, { timeout: 600_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-types-soak-'))
  const args = ['--port', '0', '--handoff', join(dir, 'h.sock'), '--segment-size', '8mb']
  let gen: KvProc = await startKv(args)
  try {
    const load = new TypesWorkload(gen.port)
    await load.start()
    await new Promise((resolve) => setTimeout(resolve, 500))
    for (let i = 0; i < UPGRADES; i++) {
      const next = await startKv(args, 60_000)
      await new Promise((resolve) => { if (gen.proc.exitCode !== null) resolve(null); else gen.proc.once('exit', resolve) })
      gen = next
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    const st = await load.stop()
    t.diagnostic(`batches ${st.batches}, published ${st.published}, received ${st.received}, errors ${st.errors}`)
    assert.equal(st.errors, 0, st.firstError)
    assert.ok(st.batches > UPGRADES * 10, `only ${st.batches} batches ran`)
    assert.ok(st.published > UPGRADES * 10, `only ${st.published} messages published`)
    assert.equal(st.received, st.published, 'messages lost')
    assert.equal(st.outOfOrder, 0)
    const keys = load.models.reduce((n, m) => n + m.size, 0)
    assert.ok(keys >= 4 * 7 * 5, `only ${keys} keys modelled`)
    assert.deepEqual(await load.verify(), [])
  } finally {
    await gen.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})
