import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { startKv, type KvProc } from '../fixtures/kv-proc.ts'
import { loadKeys, verifyKeys } from '../../tools/kv/load.ts'
import { MixedLoad } from '../../tools/kv/mixed.ts'
import { rssOf } from '../../tools/kv/procs.ts'

const UPGRADES = Number(process.env.KV_SOAK_UPGRADES ?? 30)

test(`${UPGRADES} live upgrades in a row under a checked mixed load: no error, every key intact, fds and RSS flat`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-soak-'))
  const args = ['--port', '0', '--handoff', join(dir, 'h.sock'), '--segment-size', '16mb']
  let gen: KvProc = await startKv(args)
  try {
    const loaded = await loadKeys({ port: gen.port, count: 100_000, valueSize: 512 })
    const load = new MixedLoad({ port: gen.port, workers: 8, keys: 100_000, valueSize: 512 })
    await load.start()
    const fds: number[] = []
    const rss: number[] = []
    for (let i = 0; i < UPGRADES; i++) {
      const next = await startKv(args)
      await new Promise((resolve) => { if (gen.proc.exitCode !== null) resolve(null); else gen.proc.once('exit', resolve) })
      gen = next
      await new Promise((resolve) => setTimeout(resolve, 200))
      fds.push(readdirSync(`/proc/${gen.pid}/fd`).length)
      rss.push(rssOf(gen.pid))
    }
    const st = await load.stop()
    assert.equal(st.errors, 0, st.firstError)
    assert.equal(st.wrong, 0)
    assert.ok(st.requests > UPGRADES * 1000)
    const tail = fds.slice(5)
    assert.ok(Math.max(...tail) - Math.min(...tail) <= 4, `fds: ${fds.join(' ')}`)
    const late = rss.slice(-5)
    assert.ok(Math.max(...late) < 2 * Math.max(...rss.slice(5, 10)), `rss: ${rss.map((r) => Math.round(r / 2 ** 20)).join(' ')} MiB`)
    const v = await verifyKeys(gen.port, 100_000, 512)
    assert.equal(v.missing + v.wrong, 0)
    assert.equal(v.checksum.sum, loaded.checksum.sum)
  } finally {
    await gen.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})
