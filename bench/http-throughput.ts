/**
 * Steady throughput of the wrapped server (MODE=pagegift, generation 1) against the same app
 * listening plainly (MODE=plain), node:http, 64 MiB cache, autocannon with 64 keep-alive
 * connections from the bench process. The two run alternately (plain first in even runs, wrapped
 * first in odd ones), each in a fresh process after 1 s of warm-up. The client shares the machine,
 * so req/s also measures the client and whatever else runs; the server's CPU time per request is
 * the steadier measure. Each run's pair (one of each, back to back) also gives a paired ratio,
 * which drifts in the machine's load cancel out of. On a busy machine even that drifts: the
 * side-by-side runs (`sideBySide`) serve both at the same time, each under its own autocannon, so
 * both see the same load.
 */
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { printTable, stats } from './lib.ts'
import { Proc, sleep } from './http-proc.ts'

export interface Tp { rps: number[], cpuUsPerReq: number[] }
export interface Throughput {
  /** 'alternating': one after the other; 'side by side': both at once. */
  how: 'alternating' | 'side by side'
  plain: Tp
  pagegift: Tp
  /** 1 - median wrapped req/s / median plain req/s. */
  cost: number
  /** median wrapped CPU per request / median plain CPU per request - 1. */
  cpuCost: number
  /** The same two, as the median of each run's own pair. */
  pairedCost: number
  pairedCpuCost: number
  /** The 1-minute load average at each run (what else ran on the machine). */
  loadAvg: number[]
}

/** The CPU time (user + system, ms) a process has used so far, from /proc. */
function cpuMs (pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10 // utime and stime, in USER_HZ (100/s)
}

type Mode = 'plain' | 'pagegift'

/** Starts the app in `mode`, waits at `barrier` (side by side: until the other serves too), warms it up for 1 s, then measures it for `sec` s. */
async function serve (app: string, mode: Mode, port: number, sec: number, barrier = async (): Promise<void> => {}): Promise<{ rps: number, cpuUs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-bench-tp-'))
  writeFileSync(join(dir, 'prefill'), '')
  const p = new Proc(process.execPath, [app], { APP: 'node', MODE: mode, PORT: String(port), CACHE_MB: '64', PREFILL_FILE: join(dir, 'prefill'), SOCK: join(dir, 'h.sock') })
  try {
    await p.wait('serving')
    await barrier()
    const pid = p.child.pid as number
    await autocannon({ url: `http://127.0.0.1:${port}/k?i=7`, connections: 64, duration: 1 }) // JIT warm-up
    const cpu0 = cpuMs(pid)
    const r = await autocannon({ url: `http://127.0.0.1:${port}/k?i=7`, connections: 64, duration: sec })
    return { rps: r.requests.average, cpuUs: ((cpuMs(pid) - cpu0) * 1000) / r.requests.total }
  } finally {
    try { process.kill(-(p.child.pid as number), 'SIGKILL') } catch {}
    await sleep(300)
    rmSync(dir, { recursive: true, force: true })
  }
}

const med = (xs: number[]): number => stats(xs).median

interface TpOpts { app: string, runs: number, sec: number, port: number }

/** Alternating runs: plain then wrapped in even runs, wrapped then plain in odd ones. */
export async function throughput (o: TpOpts): Promise<Throughput> {
  return await runPairs(o, 'alternating', async (run, each) => {
    for (const mode of run % 2 === 0 ? ['plain', 'pagegift'] as const : ['pagegift', 'plain'] as const) each(mode, await serve(o.app, mode, o.port, o.sec))
  })
}

/** Side by side: both at once (on two ports), each under its own autocannon. */
export async function sideBySide (o: TpOpts): Promise<Throughput> {
  return await runPairs(o, 'side by side', async (run, each) => {
    const modes = run % 2 === 0 ? ['plain', 'pagegift'] as const : ['pagegift', 'plain'] as const
    let arrived = 0
    let release!: () => void
    const both = new Promise<void>((resolve) => { release = resolve })
    const barrier = async (): Promise<void> => { if (++arrived === 2) release(); await both }
    const rs = await Promise.all(modes.map(async (mode, i) => await serve(o.app, mode, o.port + i, o.sec, barrier)))
    modes.forEach((mode, i) => each(mode, rs[i]))
  })
}

type Each = (mode: Mode, r: { rps: number, cpuUs: number }) => void

async function runPairs (o: TpOpts, how: Throughput['how'], pair: (run: number, each: Each) => Promise<void>): Promise<Throughput> {
  const plain: Tp = { rps: [], cpuUsPerReq: [] }
  const pagegift: Tp = { rps: [], cpuUsPerReq: [] }
  const loadAvg: number[] = []
  for (let run = 0; run < o.runs; run++) {
    loadAvg.push(loadavg()[0])
    await pair(run, (mode, r) => {
      const tp = mode === 'plain' ? plain : pagegift
      tp.rps.push(r.rps)
      tp.cpuUsPerReq.push(r.cpuUs)
    })
  }
  const pairs = (f: (i: number) => number): number => med(plain.rps.map((_, i) => f(i)))
  return {
    how,
    plain,
    pagegift,
    cost: 1 - med(pagegift.rps) / med(plain.rps),
    cpuCost: med(pagegift.cpuUsPerReq) / med(plain.cpuUsPerReq) - 1,
    pairedCost: pairs((i) => 1 - pagegift.rps[i] / plain.rps[i]),
    pairedCpuCost: pairs((i) => pagegift.cpuUsPerReq[i] / plain.cpuUsPerReq[i] - 1),
    loadAvg,
  }
}

const range = (xs: number[], d = 0): string => `${med(xs).toFixed(d)} (${stats(xs).min.toFixed(d)}..${stats(xs).max.toFixed(d)})`
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`

export function printThroughput (t: Throughput, runs: number, sec: number): void {
  process.stdout.write(`steady throughput, wrapped against the same app listening plainly (node:http, autocannon 64 connections, ${runs} ${t.how} runs of ${sec} s; median (min..max); load average ${range(t.loadAvg, 1)}):\n`)
  printTable([
    { server: 'plain node:http', 'req/s': range(t.plain.rps), 'CPU us/req': range(t.plain.cpuUsPerReq, 1), 'cost req/s': '-', 'cost CPU/req': '-' },
    { server: 'wrapped (liveHttp)', 'req/s': range(t.pagegift.rps), 'CPU us/req': range(t.pagegift.cpuUsPerReq, 1), 'cost req/s': `${pct(t.cost)} (paired ${pct(t.pairedCost)})`, 'cost CPU/req': `${pct(t.cpuCost)} (paired ${pct(t.pairedCpuCost)})` },
  ])
}
