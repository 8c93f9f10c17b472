/**
 * `node --import tsx bench/kv-memory.ts [--n=1000000] [--quick]`: memory per element of hashes, lists,
 * sets and sorted sets, pagegift-kv against redis-server in the same run, for two shapes:
 *  - redis-benchmark's: `redis-benchmark -t hset|lpush|sadd|zadd -n N -r 1000000 -d 64` (one big
 *    collection per type, up to 1M distinct elements);
 *  - 10,000 collections of 100 elements (members `element:<12 digits>`, values 64 bytes).
 * Two measures, each the same for both servers, over the load, divided by the element count:
 *  - INFO used_memory's growth (the one the ratio is judged on): Redis's counts jemalloc's allocations
 *    at their size-class sizes; ours counts records, the key index and the collections heap's blocks
 *    at their class sizes. Neither counts allocator fragmentation.
 *  - the growth of the process's RSS (VmRSS, which counts the giftable shared-memory arenas too). For
 *    us it also counts the V8 heap's growth under load, which has nothing to do with the data.
 * Each measure starts fresh servers, so no earlier load's freed memory blurs it.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KvClient } from '../src/kv/client.ts'
import { redisBenchmark, startRedis } from '../tools/kv/peers.ts'
import { freePort, rssOf, startKv, type Proc } from '../tools/kv/procs.ts'
import { printTable, writeResults } from './lib.ts'

const arg = (name: string, dflt: number): number => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`))
  return a === undefined ? dflt : Number(a.split('=')[1])
}
const quick = process.argv.includes('--quick')
const N = arg('n', quick ? 200_000 : 1_000_000)
const COLLECTIONS = quick ? 2000 : 10_000
const say = (s: string): void => { process.stdout.write(s + '\n') }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

const TYPES = [
  { type: 'hash', test: 'hset', key: 'myhash', count: 'HLEN' },
  { type: 'list', test: 'lpush', key: 'mylist', count: 'LLEN' },
  { type: 'set', test: 'sadd', key: 'myset', count: 'SCARD' },
  { type: 'zset', test: 'zadd', key: 'myzset', count: 'ZCARD' }
]

interface Server { name: string, proc: Proc, port: number, pid: number }

async function usedMemory (c: KvClient): Promise<number> {
  const info = String(await c.call('INFO', 'memory'))
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0)
}

/** RSS after the process settled (Redis frees lazily, we may too): the lowest of a few reads. */
async function settledRss (pid: number): Promise<number> {
  let low = Infinity
  for (let i = 0; i < 5; i++) { low = Math.min(low, rssOf(pid)); await sleep(100) }
  return low
}

const element = (i: number): string => `element:${String(i).padStart(12, '0')}`
const VALUE = 'x'.repeat(64)

/** Loads 10,000 (or fewer with --quick) collections of 100 elements of `type`. */
async function loadSmall (c: KvClient, type: string): Promise<number> {
  const batch: (string | number)[][] = []
  for (let k = 0; k < COLLECTIONS; k++) {
    const args: (string | number)[] = []
    for (let j = 0; j < 100; j++) {
      const m = element(k * 100 + j)
      if (type === 'hash') args.push(m, VALUE)
      else if (type === 'list') args.push(VALUE)
      else if (type === 'set') args.push(m)
      else args.push(Math.floor(Math.random() * 1_000_000), m)
    }
    const cmd = { hash: 'HSET', list: 'RPUSH', set: 'SADD', zset: 'ZADD' }[type] as string
    batch.push([cmd, `small:${type}:${k}`, ...args])
    if (batch.length === 200) await c.pipeline(batch.splice(0))
  }
  if (batch.length > 0) await c.pipeline(batch)
  return COLLECTIONS * 100
}

async function measure (s: Server, type: typeof TYPES[number], shape: string): Promise<{ rss: number, used: number, elements: number }> {
  const c = await KvClient.connect(s.port)
  try {
    await sleep(300)
    const rss0 = await settledRss(s.pid)
    const used0 = await usedMemory(c)
    let elements: number
    if (shape === 'benchmark') {
      await redisBenchmark(s.port, ['-t', type.test, '-n', String(N), '-r', '1000000', '-d', '64', '-c', '50', '-P', '16'])
      elements = Number(await c.call(type.count, type.key))
    } else {
      elements = await loadSmall(c, type.type)
    }
    const rss = (await settledRss(s.pid)) - rss0
    const used = (await usedMemory(c)) - used0
    return { rss, used, elements }
  } finally {
    await c.close()
  }
}

/** Fresh servers for each measure, so that no earlier load's freed memory blurs the next one's RSS. */
async function startServers (dir: string): Promise<Server[]> {
  const redisPort = await freePort()
  const kv = await startKv(['--port', '0'])
  const redis = await startRedis(redisPort, dir)
  return [
    { name: 'pagegift-kv', proc: kv, port: kv.port, pid: kv.proc.pid as number },
    { name: 'redis-server', proc: redis, port: redisPort, pid: redis.proc.pid as number }
  ]
}

async function main (): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kv-mem-'))
  const rows: Record<string, string | number>[] = []
  try {
    for (const shape of ['benchmark', 'small']) {
      for (const type of TYPES) {
        const r: Record<string, { rss: number, used: number, elements: number }> = {}
        const servers = await startServers(dir)
        try {
          for (const s of servers) r[s.name] = await measure(s, type, shape)
        } finally {
          for (const s of servers) await s.proc.stop()
        }
        const ours = r['pagegift-kv']; const theirs = r['redis-server']
        const rss = (x: { rss: number, elements: number }): number => x.rss / Math.max(1, x.elements)
        const used = (x: { used: number, elements: number }): number => x.used / Math.max(1, x.elements)
        rows.push({
          type: type.type,
          shape: shape === 'benchmark' ? `-n ${N} -r 1M -d 64` : `${COLLECTIONS} x 100`,
          elements: ours.elements,
          'redis used/el': used(theirs).toFixed(1),
          'ours used/el': used(ours).toFixed(1),
          'ratio (used_memory)': (used(ours) / used(theirs)).toFixed(2),
          'redis RSS/el': rss(theirs).toFixed(1),
          'ours RSS/el': rss(ours).toFixed(1),
          'ratio (RSS)': (rss(ours) / rss(theirs)).toFixed(2)
        })
        say(`  ${type.type} ${shape}: done`)
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  printTable(rows)
  say(`results: ${writeResults('kv-memory', rows)}`)
}

await main()
