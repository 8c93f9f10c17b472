/**
 * `npm run bench -- kv [--quick] [--4g] [--keys=N] [--upgrades=N] [--upgrade-only]`: pagegift-kv
 * against Debian's redis-server and memcached, in the same run.
 *  - throughput: redis-benchmark -t set,get -n 1M -r 1M -d 64 -c 50 -P 16, against us and Redis;
 *  - memory: 1M keys x 1 KiB (2^20; --keys, or 4 Mi with --4g), our RSS against Redis's used_memory_rss;
 *  - live upgrades (issue 11, target 4): 100 upgrades in a row (--upgrades) with redis-benchmark
 *    running (50 clients) and 8 probe connections; per upgrade, the longest gap a probe saw from its
 *    last answer before to its first after. --upgrade-only runs just this (a quick check:
 *    --upgrade-only --keys=100000 --upgrades=10);
 *  - upgrade vs restart: that median against a Redis SHUTDOWN SAVE and restart, and a memcached
 *    warm restart (-e file on /dev/shm, SIGUSR1), each seen by a client the same way.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KvClient, type RespValue } from '../src/kv/client.ts'
import { keyName, fillValue } from '../tools/kv/data.ts'
import { loadKeys, verifyKeys } from '../tools/kv/load.ts'
import { McClient } from '../tools/kv/memcached.ts'
import { ensurePeers, redisBenchmark, startMemcached, startRedis, type BenchLine } from '../tools/kv/peers.ts'
import { Probe, respAsker, type Asker } from '../tools/kv/probe.ts'
import { freePort, rssOf, startKv, startProcess } from '../tools/kv/procs.ts'
import { formatBytes, formatMs, printTable, stats, writeResults } from './lib.ts'

const say = (s: string): void => { process.stdout.write(s + '\n') }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** The run with the median ops/s, per test, of `runs`. */
function medianRuns (runs: BenchLine[][]): BenchLine[] {
  return runs[0].map((first) => {
    const all = runs.map((r) => r.find((l) => l.test === first.test) as BenchLine).sort((x, y) => x.rps - y.rps)
    return all[all.length >> 1]
  })
}

/** Both servers run side by side (idle when not measured); measured runs alternate, `rounds` each. */
async function throughput (n: number, rounds: number): Promise<Record<string, BenchLine[]>> {
  const args = ['-t', 'set,get', '-n', String(n), '-r', String(n), '-d', '64', '-c', '50', '-P', '16']
  const dir = mkdtempSync(join(tmpdir(), 'kv-bench-'))
  const ports = { 'pagegift-kv': await freePort(), 'redis-server': await freePort() }
  const servers = [await startKv(['--port', String(ports['pagegift-kv'])]), await startRedis(ports['redis-server'], dir)]
  const runs: Record<string, BenchLine[][]> = { 'pagegift-kv': [], 'redis-server': [] }
  try {
    for (const port of Object.values(ports)) await redisBenchmark(port, ['-t', 'set', '-n', String(n), '-r', String(n), '-d', '64', '-c', '50', '-P', '16'])
    for (let r = 0; r < rounds; r++) {
      for (const [target, port] of Object.entries(ports)) {
        const lines = await redisBenchmark(port, args)
        runs[target].push(lines)
        say(`  ${target} run ${r + 1}: ${lines.map((l) => `${l.test} ${Math.round(l.rps)}/s p99 ${l.p99Ms} ms`).join(', ')}`)
      }
    }
  } finally {
    for (const s of servers) await s.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  return { 'pagegift-kv': medianRuns(runs['pagegift-kv']), 'redis-server': medianRuns(runs['redis-server']) }
}

interface Restart { target: string, keys: number, rss: number, unavailableMs: number, detail: string, intact: boolean, gaps?: number[], gapSplits?: Array<{ before: number, after: number }>, downtimes?: number[], phases?: Record<string, number> }

const progress = (what: string) => (done: number, total: number): void => {
  if (done % Math.max(1, Math.floor(total / 10)) < 256 || done === total) process.stdout.write(`\r  ${what}: ${Math.round(100 * done / total)}%   ${done === total ? '\n' : ''}`)
}

/** The index of the first of `times` (ascending) at or after `at`, by bisection: a probe keeps thousands of answers per upgrade. */
function firstAtOrAfter (times: number[], at: number): number {
  let lo = 0
  let hi = times.length
  while (lo < hi) { const mid = (lo + hi) >> 1; if (times[mid] < at) lo = mid + 1; else hi = mid }
  return lo
}

/**
 * The worst probe's gap across the upgrade whose gate opened at `atMs`, split there: from its last
 * answer to the gate opening (the pause, and whatever came before the stop), and from the gate
 * opening to its first answer (the successor's first turn, and the scheduler).
 */
function worstGap (probes: Probe[], atMs: number): { gap: number, before: number, after: number } {
  let worst = { gap: Number.NaN, before: Number.NaN, after: Number.NaN }
  for (const p of probes) {
    const j = firstAtOrAfter(p.times, atMs)
    if (j <= 0 || j >= p.times.length) continue
    const gap = p.times[j] - p.times[j - 1]
    if (!(gap <= worst.gap)) worst = { gap, before: atMs - p.times[j - 1], after: p.times[j] - atMs }
  }
  return worst
}

const PROBES = 8
const BENCH_CLIENTS = 50
const BENCH_KEYS = 100_000

/**
 * Issue 11, target 4: loads `keys` x `size`, then upgrades `times` times in a row while
 * redis-benchmark (50 clients, GET/SET over the loaded keys, looping) and 8 probe connections run.
 * Per upgrade, the gap is the longest any probe saw from its last answer before the new generation
 * served to its first answer after; the connections move with each upgrade.
 */
async function pagegiftUpgrade (keys: number, size: number, times: number): Promise<Restart> {
  const dir = mkdtempSync(join(tmpdir(), 'kv-bench-'))
  const port = await freePort()
  const args = ['--port', String(port), '--handoff', join(dir, 'handoff.sock')]
  let gen = await startKv(args)
  const load = await loadKeys({ port, count: keys, valueSize: size, onProgress: progress('pagegift-kv load') })
  const rss = rssOf(gen.proc.pid as number)
  const gaps: number[] = []
  const splits: Array<{ before: number, after: number }> = []
  const handoffs: number[] = []
  const probes = Array.from({ length: PROBES }, (_, i) => new Probe(respAsker(port, ['GET', keyName('key:', i)], Buffer.isBuffer)))
  // Its keys (12 digits) never meet the loaded ones (10): those stay checkable; its own stay few, so memory stays put.
  const bench = startProcess('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-t', 'get,set', '-r', String(Math.min(keys, BENCH_KEYS)), '-d', String(size), '-c', String(BENCH_CLIENTS), '-n', '100000000', '-l', '-q'])
  let worst = 0
  const phases: Record<string, number[]> = {}
  try {
    for (const p of probes) p.start()
    await sleep(500)
    for (let i = 0; i < times; i++) {
      const next = await startKv(args)
      await gen.exited
      gen = next
      await sleep(200)
      const c = await KvClient.connect(port)
      const info = String(await c.call('INFO', 'pagegift'))
      await c.close()
      const servedAt = Number(/last_served_at_monotonic_ns:(\d+)/.exec(info)?.[1]) / 1e6
      const w = worstGap(probes, servedAt)
      gaps.push(w.gap)
      splits.push({ before: w.before, after: w.after })
      handoffs.push(Number(/last_downtime_ms:([\d.]+)/.exec(info)?.[1]))
      for (const [, k, v] of (/last_pause_phases_ms:(\S*)/.exec(info)?.[1] ?? '').matchAll(/(\w+)=([\d.]+)/g)) (phases[k] ??= []).push(Number(v))
      if ((i + 1) % 10 === 0 || i + 1 === times) say(`  upgrade ${i + 1}/${times}: gap median so far ${formatMs(stats(gaps).median)}`)
    }
    for (const p of probes) worst = Math.max(worst, (await p.stop()).maxGapMs)
  } finally {
    await bench.stop('SIGINT')
  }
  const v = await verifyKeys(port, keys, size)
  await gen.stop()
  rmSync(dir, { recursive: true, force: true })
  const intact = v.wrong === 0 && v.missing === 0 && v.checksum.sum === load.checksum.sum
  const gap = stats(gaps.filter((g) => !Number.isNaN(g)))
  const handoff = stats(handoffs)
  say(`  pagegift-kv: ${times} upgrades under redis-benchmark (${BENCH_CLIENTS} clients) with ${PROBES} probes: client gap median ${formatMs(gap.median)}, p99 ${formatMs(gap.p99)}, max ${formatMs(gap.max)} (issue 11 target: <= 1.5 ms median, <= 3 ms p99); downtime median ${formatMs(handoff.median)}, p99 ${formatMs(handoff.p99)}`)
  const phaseMedians = Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, stats(v).median]))
  say(`  pause by phase (medians): ${Object.entries(phaseMedians).map(([k, v]) => `${k} ${formatMs(v)}`).join(', ') || 'not reported'}`)
  const before = stats(splits.map((x) => x.before).filter((x) => !Number.isNaN(x)))
  const after = stats(splits.map((x) => x.after).filter((x) => !Number.isNaN(x)))
  say(`  the worst probe's gap, split where the gate opened (medians): last answer -> gate open ${formatMs(before.median)} (downtime ${formatMs(handoff.median)} of it, and the open phase), gate open -> first answer ${formatMs(after.median)} (p99 ${formatMs(after.p99)})`)
  return {
    target: `pagegift-kv live upgrade (median of ${times}, under load)`, keys, rss, unavailableMs: gap.median, intact,
    detail: `p99 ${formatMs(gap.p99)}, max ${formatMs(gap.max)}; downtime median ${formatMs(handoff.median)}; longest wait incl. successor start-up ${formatMs(worst)}; ${keys - v.missing} keys checksummed after ${times} upgrades`,
    gaps,
    gapSplits: splits,
    downtimes: handoffs,
    phases: phaseMedians,
  }
}

async function redisRestart (keys: number, size: number): Promise<Restart> {
  const dir = mkdtempSync(join(tmpdir(), 'kv-bench-'))
  const port = await freePort()
  const redis = await startRedis(port, dir)
  await loadKeys({ port, count: keys, valueSize: size, onProgress: progress('redis-server load') })
  const c = await KvClient.connect(port)
  const rss = Number(/used_memory_rss:(\d+)/.exec(String(await c.call('INFO', 'memory')))?.[1])
  const probe = new Probe(respAsker(port, ['DBSIZE'], (x: RespValue) => x === keys))
  probe.start()
  await sleep(300)
  const t0 = performance.now()
  void c.pipeline([['SHUTDOWN', 'SAVE']])
  await redis.exited
  const saveMs = performance.now() - t0
  const again = startProcess('redis-server', redis.proc.spawnargs.slice(1))
  const r = await probe.stop(900_000)
  await again.stop()
  rmSync(dir, { recursive: true, force: true })
  return { target: 'redis-server SHUTDOWN SAVE + restart', keys, rss, unavailableMs: r.maxGapMs, intact: true, detail: `save ${formatMs(saveMs)}, restart+load ${formatMs(r.maxGapMs - saveMs)}` }
}

function mcAsker (port: number, key: string): Asker {
  let c: McClient | null = null
  return {
    connect: async () => { c = await McClient.connect(port) },
    ask: async () => {
      if (c === null) throw new Error('not connected')
      const r = await c.request(`get ${key}\r\n`, 'END\r\n')
      if (r === 'CLOSED') throw new Error('closed')
      return r.startsWith('VALUE')
    },
    close: () => { c?.close(); c = null }
  }
}

async function memcachedRestart (keys: number, size: number): Promise<Restart> {
  const port = await freePort()
  const file = `/dev/shm/pagegift-bench-${process.pid}.mc`
  const mb = Math.ceil(keys * (size + 200) / 2 ** 20) + 64
  const mc = await startMemcached(port, file, mb)
  const c = await McClient.connect(port)
  const value = Buffer.allocUnsafe(size)
  for (let i = 0; i < keys; i += 500) {
    const items: [string, Buffer][] = []
    for (let j = i; j < Math.min(keys, i + 500); j++) items.push([keyName('key:', j), Buffer.from(fillValue(value, j))])
    await c.setMany(items)
    progress('memcached load')(Math.min(keys, i + 500), keys)
  }
  const rss = rssOf(mc.proc.pid as number)
  c.close()
  const probe = new Probe(mcAsker(port, keyName('key:', keys - 1)))
  probe.start()
  await sleep(300)
  const t0 = performance.now()
  mc.proc.kill('SIGUSR1')
  await mc.exited
  const stopMs = performance.now() - t0
  // memcached comes back empty if restarted within the wall-clock second it stopped in.
  const second = Math.floor(Date.now() / 1000)
  while (Math.floor(Date.now() / 1000) === second) await sleep(1)
  const again = await startMemcached(port, file, mb)
  const r = await probe.stop(300_000)
  const c2 = await McClient.connect(port)
  const items = await c2.stat('curr_items')
  c2.close()
  await again.stop()
  rmSync(file, { force: true })
  return { target: 'memcached warm restart (-e, SIGUSR1)', keys, rss, unavailableMs: r.maxGapMs, intact: items === keys, detail: `stop ${formatMs(stopMs)}, ${items} items back (waits for the next wall-clock second)` }
}

function flag (flags: string[], name: string): number | undefined {
  const v = flags.find((f) => f.startsWith(`--${name}=`))?.slice(name.length + 3)
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be a positive integer, got '${v}'`)
  return n
}

export async function run (flags: string[]): Promise<void> {
  const quick = flags.includes('--quick')
  const upgradeOnly = flags.includes('--upgrade-only')
  const keys = flag(flags, 'keys') ?? (flags.includes('--4g') ? 4 * 2 ** 20 : quick ? 2 ** 18 : 2 ** 20)
  const upgrades = flag(flags, 'upgrades') ?? (quick ? 5 : 100)
  ensurePeers()
  let tp: Record<string, BenchLine[]> | null = null
  if (!upgradeOnly) {
    const n = quick ? 200_000 : 1_000_000
    say(`throughput: redis-benchmark -t set,get -n ${n} -r ${n} -d 64 -c 50 -P 16 (median of ${quick ? 1 : 3} alternating runs)`)
    tp = await throughput(n, quick ? 1 : 3)
    const rows: Record<string, string | number>[] = []
    for (const l of tp['pagegift-kv']) {
      const redis = tp['redis-server'].find((x) => x.test === l.test) as BenchLine
      rows.push({ test: l.test, 'pagegift-kv ops/s': Math.round(l.rps), 'redis ops/s': Math.round(redis.rps), ratio: (l.rps / redis.rps).toFixed(2), 'pagegift-kv p99': `${l.p99Ms} ms`, 'redis p99': `${redis.p99Ms} ms`, 'p99 ratio': (l.p99Ms / redis.p99Ms).toFixed(2) })
    }
    printTable(rows)
  }
  say(`\nlive upgrades: ${keys} keys x 1 KiB (${formatBytes(keys * 1024)} of values), ${upgrades} upgrades, redis-benchmark ${BENCH_CLIENTS} clients + ${PROBES} probes`)
  const ours = await pagegiftUpgrade(keys, 1024, upgrades)
  const restarts = upgradeOnly ? [ours] : [ours, await redisRestart(keys, 1024), await memcachedRestart(keys, 1024)]
  printTable(restarts.map((r) => ({
    what: r.target, rss: formatBytes(r.rss), 'rss vs redis': restarts[1] !== undefined ? (r.rss / restarts[1].rss).toFixed(2) : '-', unavailable: formatMs(r.unavailableMs),
    'vs pagegift-kv': r === ours ? '1x' : `${Math.round(r.unavailableMs / ours.unavailableMs)}x`, intact: r.intact ? 'yes' : 'NO', detail: r.detail
  })))
  writeResults('kv', { throughput: tp, restarts, keys, valueSize: 1024, upgrades, probes: PROBES, benchClients: BENCH_CLIENTS })
}
