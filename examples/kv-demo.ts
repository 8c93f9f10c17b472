/**
 * `npm run demo`: pagegift-kv upgraded live, three times, under load, with nothing but this package.
 * 1. start pagegift-kv; 2. load 256 MiB with our pipelined client; 3. run a mixed read/write load;
 * 4. upgrade it live 3 times during the load; 5. report downtime, requests, errors, keys verified,
 * and what a restart that reloads the same data from disk costs, measured in the same run.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KvClient } from '../src/kv/client.ts'
import { loadKeys, verifyKeys } from '../tools/kv/load.ts'
import { MixedLoad } from '../tools/kv/mixed.ts'
import { Probe, respAsker } from '../tools/kv/probe.ts'
import { freePort, startKv, type Proc } from '../tools/kv/procs.ts'
import { ProgressBar } from '../tools/kv/progress.ts'

const MiB = 1024 * 1024
const VALUE = 1024
const KEYS = 256 * MiB / VALUE
const say = (s: string): void => { process.stdout.write(s + '\n') }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const mib = (n: number): string => `${(n / MiB).toFixed(0)} MiB`
/** Every server line, printed if the demo fails. */
const serverLog: string[] = []
const logAs = (who: string) => (line: string): void => { serverLog.push(`${who}: ${line}`) }

interface Upgrade { generation: number, handoffMs: number, clientGapMs: number, worstWaitMs: number, pid: number }

async function info (port: number, section: string): Promise<string> {
  const c = await KvClient.connect(port)
  const s = String(await c.call('INFO', section))
  await c.close()
  return s
}

/** Starts a successor, waits for the old generation to exit, and reads the downtime it measured. */
async function upgrade (prev: Proc & { port: number }, args: string[]): Promise<{ next: Proc & { port: number }, generation: number, handoffMs: number, servedAtMs: number }> {
  const next = await startKv(args, logAs(`successor ${Date.now()}`))
  await prev.exited
  const s = await info(next.port, 'pagegift')
  const num = (re: RegExp): number => Number(re.exec(s)?.[1])
  return { next, generation: num(/generation:(\d+)/), handoffMs: num(/last_downtime_ms:([\d.]+)/), servedAtMs: num(/last_served_at_monotonic_ns:(\d+)/) / 1e6 }
}

/** SAVE, stop, start a new process that loads the snapshot, until it serves: a restart's cost. */
async function restartFromDisk (port: number, snapshot: string): Promise<{ saveMs: number, startLoadMs: number, bytes: number }> {
  const c = await KvClient.connect(port)
  const t0 = performance.now()
  await c.call('SAVE')
  const saveMs = performance.now() - t0
  await c.close()
  const t1 = performance.now()
  const fresh = await startKv(['--port', String(await freePort()), '--snapshot', snapshot])
  const startLoadMs = performance.now() - t1
  const keys = Number(await (await KvClient.connect(fresh.port)).call('DBSIZE'))
  await fresh.stop()
  if (keys < KEYS) throw new Error(`the reloaded copy has ${keys} keys, expected at least ${KEYS}`)
  return { saveMs, startLoadMs, bytes: statSync(snapshot).size }
}

async function demo (): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'pagegift-demo-'))
  const snapshot = join(dir, 'kv.snapshot')
  const args = ['--port', String(await freePort()), '--handoff', join(dir, 'handoff.sock'), '--snapshot', snapshot]
  say('1. starting pagegift-kv')
  let gen = await startKv(args, logAs('generation 1'))
  try {
    say(`   generation 1, pid ${gen.proc.pid}, 127.0.0.1:${gen.port}`)
    say(`2. loading ${mib(KEYS * VALUE)} (${KEYS} keys x ${VALUE} B) with the pipelined client`)
    const bar = new ProgressBar('  ', KEYS, (n) => mib(n * VALUE))
    const loaded = await loadKeys({ port: gen.port, count: KEYS, valueSize: VALUE, onProgress: (d) => bar.update(d) })
    say(`   loaded in ${(loaded.ms / 1000).toFixed(1)} s, ${loaded.errors} errors`)
    say('3. mixed load: 8 clients, pipelined, 80% GET (every value checked) / 20% SET')
    const load = new MixedLoad({ port: gen.port, workers: 8, keys: KEYS, valueSize: VALUE })
    await load.start()
    const upgrades: Upgrade[] = []
    for (let i = 0; i < 3; i++) {
      await sleep(2500)
      const probe = new Probe(respAsker(gen.port, ['PING']))
      probe.start()
      await sleep(100)
      const r = await upgrade(gen, args)
      const p = await probe.stop()
      gen = r.next
      const gap = probe.gapAround(r.servedAtMs)
      upgrades.push({ generation: r.generation, handoffMs: r.handoffMs, clientGapMs: gap, worstWaitMs: p.maxGapMs, pid: gen.proc.pid as number })
      say(`4. live upgrade ${i + 1}: generation ${r.generation} (pid ${gen.proc.pid}), handoff downtime ${r.handoffMs.toFixed(2)} ms, client gap across it ${gap.toFixed(2)} ms, probe reconnects ${p.reconnects}`)
    }
    await sleep(2000)
    const st = await load.stop()
    const v = await verifyKeys(gen.port, KEYS, VALUE)
    const verified = KEYS - v.missing - v.wrong
    const same = v.checksum.sum === loaded.checksum.sum
    say('   measuring a restart from disk instead: SAVE, start a new process, load the snapshot...')
    const disk = await restartFromDisk(gen.port, snapshot)
    const restartMs = disk.saveMs + disk.startLoadMs
    const worst = Math.max(...upgrades.map((u) => u.clientGapMs))
    const slowest = Math.max(...upgrades.map((u) => u.worstWaitMs))
    say('\n5. report')
    say(`   downtime per upgrade (handoff): ${upgrades.map((u) => `${u.handoffMs.toFixed(2)} ms`).join(', ')}`)
    say(`   client gap across each handoff: ${upgrades.map((u) => `${u.clientGapMs.toFixed(2)} ms`).join(', ')}`)
    say(`   longest client wait during each upgrade, successor start-up on 2 cores included: ${upgrades.map((u) => `${u.worstWaitMs.toFixed(0)} ms`).join(', ')}`)
    say(`   requests served under load:     ${st.requests} (errors ${st.errors}${st.firstError !== '' ? `: ${st.firstError}` : ''}, wrong values ${st.wrong})`)
    say(`   keys verified after upgrade 3:  ${verified} of ${KEYS}, checksum ${same ? 'matches' : 'DIFFERS'}`)
    say(`   restart from disk instead:      ${(restartMs / 1000).toFixed(2)} s (SAVE ${mib(disk.bytes)} ${disk.saveMs.toFixed(0)} ms + start and reload ${disk.startLoadMs.toFixed(0)} ms), ${Math.round(restartMs / worst)}x the longest client gap across a handoff, ${Math.round(restartMs / slowest)}x the longest wait`)
    const ok = st.errors === 0 && st.wrong === 0 && verified === KEYS && same && upgrades.length === 3
    say(ok ? '\n   OK: 3 live upgrades, no errors, every key intact.' : '\n   FAILED: see above.')
    if (!ok) say(`\nserver output:\n${serverLog.join('\n')}`)
    return ok ? 0 : 1
  } catch (err) {
    say(`\nserver output:\n${serverLog.join('\n')}`)
    throw err
  } finally {
    await gen.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

process.exitCode = await demo()
