/**
 * `npm run bench -- kv [--quick] [--4g]`: pagegift-kv against Debian's redis-server and memcached,
 * in the same run.
 *  - throughput: redis-benchmark -t set,get -n 1M -r 1M -d 64 -c 50 -P 16, against us and Redis;
 *  - memory: 1M keys x 1 KiB, our RSS against Redis's used_memory_rss;
 *  - upgrade vs restart at 1 GiB (4 GiB with --4g): unavailability seen by a client, from the last
 *    answer before to the first full answer after, for a live upgrade, a Redis SHUTDOWN SAVE and
 *    restart, and a memcached warm restart (-e file on /dev/shm, SIGUSR1).
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

interface Restart { target: string, keys: number, rss: number, unavailableMs: number, detail: string, intact: boolean }

const progress = (what: string) => (done: number, total: number): void => {
  if (done % Math.max(1, Math.floor(total / 10)) < 256 || done === total) process.stdout.write(`\r  ${what}: ${Math.round(100 * done / total)}%   ${done === total ? '\n' : ''}`)
}

/** Loads the data, then upgrades `times` times in a row; reports the median client gap across a handoff. */
async function pagegiftUpgrade (keys: number, size: number, times: number): Promise<Restart> {
  const dir = mkdtempSync(join(tmpdir(), 'kv-bench-'))
  const port = await freePort()
  const args = ['--port', String(port), '--handoff', join(dir, 'handoff.sock')]
  let gen = await startKv(args)
  const load = await loadKeys({ port, count: keys, valueSize: size, onProgress: progress('pagegift-kv load') })
  const rss = rssOf(gen.proc.pid as number)
  const gaps: number[] = []
  const handoffs: number[] = []
  let worst = 0
  for (let i = 0; i < times; i++) {
    const probe = new Probe(respAsker(port, ['GET', keyName('key:', i)], Buffer.isBuffer))
    probe.start()
    await sleep(300)
    const next = await startKv(args)
    await gen.exited
    gen = next
    worst = Math.max(worst, (await probe.stop()).maxGapMs)
    const c = await KvClient.connect(port)
    const info = String(await c.call('INFO', 'pagegift'))
    await c.close()
    gaps.push(probe.gapAround(Number(/last_served_at_monotonic_ns:(\d+)/.exec(info)?.[1]) / 1e6))
    handoffs.push(Number(/last_downtime_ms:([\d.]+)/.exec(info)?.[1]))
  }
  const v = await verifyKeys(port, keys, size)
  await gen.stop()
  rmSync(dir, { recursive: true, force: true })
  const intact = v.wrong === 0 && v.missing === 0 && v.checksum.sum === load.checksum.sum
  const gap = stats(gaps)
  const handoff = stats(handoffs)
  say(`  pagegift-kv: client gaps ${gaps.map((g) => g.toFixed(2)).join(' ')} ms; handoff ${handoffs.map((h) => h.toFixed(2)).join(' ')} ms`)
  return {
    target: `pagegift-kv live upgrade (median of ${times})`, keys, rss, unavailableMs: gap.median, intact,
    detail: `max ${formatMs(gap.max)}; handoff median ${formatMs(handoff.median)}; longest wait incl. successor start-up ${formatMs(worst)}; ${keys - v.missing} keys checksummed after ${times} upgrades`
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

export async function run (flags: string[]): Promise<void> {
  const quick = flags.includes('--quick')
  ensurePeers()
  const n = quick ? 200_000 : 1_000_000
  say(`throughput: redis-benchmark -t set,get -n ${n} -r ${n} -d 64 -c 50 -P 16 (median of ${quick ? 1 : 3} alternating runs)`)
  const tp = await throughput(n, quick ? 1 : 3)
  const rows: Record<string, string | number>[] = []
  for (const l of tp['pagegift-kv']) {
    const redis = tp['redis-server'].find((x) => x.test === l.test) as BenchLine
    rows.push({ test: l.test, 'pagegift-kv ops/s': Math.round(l.rps), 'redis ops/s': Math.round(redis.rps), ratio: (l.rps / redis.rps).toFixed(2), 'pagegift-kv p99': `${l.p99Ms} ms`, 'redis p99': `${redis.p99Ms} ms`, 'p99 ratio': (l.p99Ms / redis.p99Ms).toFixed(2) })
  }
  printTable(rows)
  const keys = flags.includes('--4g') ? 4 * 2 ** 20 : quick ? 2 ** 18 : 2 ** 20
  say(`\nmemory and upgrade vs restart: ${keys} keys x 1 KiB (${formatBytes(keys * 1024)} of values)`)
  const restarts = [await pagegiftUpgrade(keys, 1024, quick ? 2 : 5), await redisRestart(keys, 1024), await memcachedRestart(keys, 1024)]
  const ours = restarts[0]
  printTable(restarts.map((r) => ({
    what: r.target, rss: formatBytes(r.rss), 'rss vs redis': (r.rss / restarts[1].rss).toFixed(2), unavailable: formatMs(r.unavailableMs),
    'vs pagegift-kv': r === ours ? '1x' : `${Math.round(r.unavailableMs / ours.unavailableMs)}x`, intact: r.intact ? 'yes' : 'NO', detail: r.detail
  })))
  writeResults('kv', { throughput: tp, restarts, keys, valueSize: 1024 })
}
