/**
 * Per-type throughput and latency, pagegift-kv beside redis-server in one run: redis-benchmark's
 * set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset, one test at a time,
 * the two servers interleaved (the order alternates each run), several runs, medians of each.
 * Targets (issue 13): throughput >= 0.9x Redis's per test, p99 <= 1.5x.
 *
 *   node --import tsx bench/kv-types.ts [--runs 5] [--requests 100000] [--pipeline 1] [--clients 50] [--tests set,get,...]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KvClient } from '../src/kv/client.ts'
import { spawnSync } from 'node:child_process'
import { startRedis } from '../tools/kv/peers.ts'
import { freePort, startKv, startProcess, type Proc } from '../tools/kv/procs.ts'
import { printTable, stats, writeResults } from './lib.ts'
import { within } from '../src/within.ts'

export const TESTS = ['set', 'get', 'incr', 'lpush', 'rpush', 'lpop', 'rpop', 'sadd', 'hset', 'spop', 'zadd', 'zpopmin', 'lrange_100', 'mset']
const TARGETS = ['pagegift-kv', 'redis-server'] as const
type Target = typeof TARGETS[number]

export interface Sample { rps: number, p50Ms: number, p99Ms: number, errors: number }
export interface Row { test: string, kv: Sample | null, redis: Sample | null, rpsRatio: number | null, p99Ratio: number | null, kvErrors: number }

const say = (s: string): void => { process.stdout.write(s + '\n') }

/** The CSV row of `test` (redis-benchmark also prints the LPUSH it needs before LRANGE). */
function rowOf (test: string, csv: string): Sample | null {
  const name = test.toUpperCase()
  for (const line of csv.split('\n')) {
    const f = line.split('","').map((x) => x.replace(/"/g, ''))
    if (f.length < 8 || !(f[0] === name || f[0].startsWith(name + ' ')) || f[0].includes('needed')) continue
    return { rps: Number(f[1]), p50Ms: Number(f[4]), p99Ms: Number(f[6]), errors: 0 }
  }
  return null
}

/** One redis-benchmark test against one server. redis-benchmark 7 exits at the first error reply, which counts as one. */
async function benchOne (port: number, test: string, o: Options): Promise<Sample | null> {
  const p = startProcess('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-t', test, '-n', String(o.requests),
    '-r', '1000000', '-d', '64', '-c', String(o.clients), '-P', String(o.pipeline), '--csv'])
  // within() clears its timer: a pending 5-minute timer kept the bench's process alive that long after its table.
  const code = await within(p.exited, 300_000, null)
  if (code === null) { await p.stop('SIGKILL'); return null }
  const sample = rowOf(test, p.output())
  const errors = (p.output().match(/Error from server|^ERR /gm) ?? []).length + (code !== 0 ? 1 : 0)
  if (sample === null || code !== 0) return errors > 0 ? { rps: 0, p50Ms: 0, p99Ms: 0, errors } : null
  return { ...sample, errors }
}

interface Options { runs: number, requests: number, pipeline: number, clients: number, tests: string[] }

function parseFlags (flags: string[]): Options {
  const o: Options = { runs: 5, requests: 100_000, pipeline: 1, clients: 50, tests: TESTS }
  for (let i = 0; i < flags.length; i++) {
    const [name, inline] = flags[i].split('=')
    const v = inline ?? flags[++i]
    if (name === '--runs') o.runs = Number(v)
    else if (name === '--requests') o.requests = Number(v)
    else if (name === '--pipeline') o.pipeline = Number(v)
    else if (name === '--clients') o.clients = Number(v)
    else if (name === '--tests') o.tests = v.split(',')
    else if (name === '--quick') { o.runs = 1; o.requests = 20_000; i-- } else throw new RangeError(`kv-types bench: unknown flag ${name}`)
  }
  return o
}

function median (samples: Sample[]): Sample | null {
  const ok = samples.filter((s) => s.rps > 0)
  if (ok.length === 0) return null
  return {
    rps: stats(ok.map((s) => s.rps)).median,
    p50Ms: stats(ok.map((s) => s.p50Ms)).median,
    p99Ms: stats(ok.map((s) => s.p99Ms)).median,
    errors: samples.reduce((n, s) => n + s.errors, 0)
  }
}

export async function run (flags: string[]): Promise<Row[]> {
  const o = parseFlags(flags)
  for (const bin of ['redis-server', 'redis-benchmark']) if (spawnSync('which', [bin]).status !== 0) throw new Error(`kv-types bench: ${bin} is not installed (apt-get install redis-server redis-tools)`)
  const dir = mkdtempSync(join(tmpdir(), 'kv-types-bench-'))
  const ports: Record<Target, number> = { 'pagegift-kv': await freePort(), 'redis-server': await freePort() }
  const servers: Proc[] = []
  const samples: Record<Target, Record<string, Sample[]>> = { 'pagegift-kv': {}, 'redis-server': {} }
  say(`kv-types: redis-benchmark -n ${o.requests} -r 1000000 -d 64 -c ${o.clients} -P ${o.pipeline}, ${o.runs} interleaved runs`)
  try {
    servers.push(await startKv(['--port', String(ports['pagegift-kv'])]), await startRedis(ports['redis-server'], dir))
    for (let r = 0; r < o.runs; r++) {
      for (const port of Object.values(ports)) await flushAll(port)
      for (const test of o.tests) {
        const order = r % 2 === 0 ? TARGETS : [...TARGETS].reverse()
        const line: string[] = []
        for (const target of order) {
          const s = await benchOne(ports[target], test, o)
          if (s !== null) (samples[target][test] ??= []).push(s)
          line.push(`${target} ${s === null ? 'n/a' : `${Math.round(s.rps)}/s p99 ${s.p99Ms} ms${s.errors > 0 ? ` ${s.errors} errors` : ''}`}`)
        }
        say(`  run ${r + 1} ${test}: ${line.join(' | ')}`)
      }
    }
  } finally {
    for (const s of servers) await s.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  const rows = o.tests.map((test): Row => {
    const kv = median(samples['pagegift-kv'][test] ?? [])
    const redis = median(samples['redis-server'][test] ?? [])
    const kvErrors = (samples['pagegift-kv'][test] ?? []).reduce((n, s) => n + s.errors, 0)
    return { test, kv, redis, kvErrors, rpsRatio: kv !== null && redis !== null ? kv.rps / redis.rps : null, p99Ratio: kv !== null && redis !== null && redis.p99Ms > 0 ? kv.p99Ms / redis.p99Ms : null }
  })
  report(rows)
  writeResults('kv-types', { options: o, rows, samples })
  return rows
}

function report (rows: Row[]): void {
  const f = (x: number | null | undefined, d = 2): string => x === null || x === undefined ? 'n/a' : x.toFixed(d)
  printTable(rows.map((r) => ({
    test: r.test,
    'kv ops/s': r.kv === null ? (r.kvErrors > 0 ? 'errors' : 'n/a') : Math.round(r.kv.rps),
    'redis ops/s': r.redis === null ? 'n/a' : Math.round(r.redis.rps),
    'ops ratio': f(r.rpsRatio),
    'kv p99 ms': f(r.kv?.p99Ms, 3),
    'redis p99 ms': f(r.redis?.p99Ms, 3),
    'p99 ratio': f(r.p99Ratio),
    targets: r.rpsRatio === null || r.p99Ratio === null ? '-' : `${r.rpsRatio >= 0.9 ? 'ok' : 'LOW'}/${r.p99Ratio <= 1.5 ? 'ok' : 'HIGH'}`
  })))
}

async function flushAll (port: number): Promise<void> {
  const c = await KvClient.connect(port)
  try {
    await c.call('FLUSHALL')
  } finally {
    await c.close()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run(process.argv.slice(2))
