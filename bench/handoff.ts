/**
 * `npm run bench -- handoff [--sizes=64m,1g,4g] [--runs=20 | --handoffs=100] [--clients=1]
 *   [--baseline-runs=5] [--service-root=<checkout>] [--clients-in-process] [--c-clients] [--quick]`
 *
 * A TCP service (tools/handoff-service.ts) whose state is one giftable region of each size
 * hands over to a fresh copy of itself, again and again, while `--clients` connections each keep
 * one request in flight, from a process of their own (`--clients-in-process`: from this one, which
 * also reads the services' reports and reaps them). Downtime runs from "stopped serving" in the old
 * generation to "serving" in the new one, both CLOCK_MONOTONIC, and the record breaks it down by phase. The client gap is what
 * the clients saw: per handoff, the longest of the clients' gaps between their last answer from the
 * old generation and their first from the new one. `--service-root` runs another checkout's service
 * (an older build, for an A/B run with this same harness). The baseline is what a user would
 * otherwise do: stop, write the state to a file on /dev/shm, start the new version, read it back.
 * Writes the JSON and an SVG timeline of the pause by phase to bench/results/.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cClients, LoadClient, PHASES, remoteClients, reports, timelineSvg, type Crossings, type Reports } from './handoff-load.ts'
import { formatBytes, formatMs, printTable, stats, writeResults, type Stats } from './lib.ts'

let root = join(dirname(fileURLToPath(import.meta.url)), '..')
/** --clients-in-process: the load clients run in this process, as they did before they had their own. */
let inProcess = false

interface Service extends Reports { child: ChildProcess }

function startService (env: Record<string, string>): Service {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'tools', 'handoff-service.ts')], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  return { child, ...reports(child, `service pid ${child.pid}`) }
}

/** clientGap: per handoff, the longest gap any client saw across it; clientGaps: every client's. */
/**
 * The gap in the client's view, per handoff (clients on this host share the service's clock):
 * `before` from the worst client's last answer to "stopped serving", `after` from SERVING to its first
 * answer, `spread` from the first client's first answer to the last client's, `over` gap minus downtime.
 */
interface ClientView { before: Stats, after: Stats, spread: Stats, over: Stats }

interface SizeResult { view: ClientView | null, bytes: number, clients: number, downtime: Stats, pause: Stats, clientGap: Stats, clientGaps: Stats, windowMaxWait: Stats, phases: Partial<Record<typeof PHASES[number], Stats>>, baseline: Stats | null, paths: string[], samples: { downtime: number[], pause: number[], clientGap: number[], phases: Array<Record<string, number | null>> } }

type Info = { downtimeMs: number | null, pauseMs: number, regions: { path: string }[], phases?: Record<string, number | null>, stoppedAt?: string }

/** One handoff in the client's view (see ClientView); null if the record has no stoppedAt (an older build). */
function clientView (info: Info, clients: Crossings[], generation: number): Record<keyof ClientView, number> | null {
  if (info.stoppedAt === undefined || info.downtimeMs === null) return null
  const stopped = BigInt(info.stoppedAt)
  const serving = stopped + BigInt(Math.round(info.downtimeMs * 1e6))
  const edges = clients.map((c) => c.edges.get(generation)).filter((e) => e !== undefined)
  if (edges.length === 0) return null
  const worst = edges.reduce((a, b) => (b.first - b.last > a.first - a.last ? b : a))
  const firsts = edges.map((e) => e.first)
  const ms = (ns: bigint): number => Number(ns) / 1e6
  return {
    before: ms(stopped - worst.last),
    after: ms(worst.first - serving),
    spread: ms(firsts.reduce((a, b) => (b > a ? b : a)) - firsts.reduce((a, b) => (b < a ? b : a))),
    over: ms(worst.first - worst.last) - info.downtimeMs,
  }
}

export async function handoffs (bytes: number, runs: number, warmup: number, sock: string, nclients: number, clientsBin?: string): Promise<Omit<SizeResult, 'baseline'>> {
  rmSync(sock, { force: true })
  // Every new service rehearses its own request, export and adopt code before it joins (tools/handoff-service.ts, warmUp).
  const env = { HANDOFF_SOCK: sock, HANDOFF_REGION_BYTES: String(bytes), HANDOFF_TOUCH: '1', HANDOFF_VERSION: 'bench', HANDOFF_WARMUP: '200' }
  let current = startService(env)
  const { port } = await current.wait('listening') as { port: number }
  await current.wait('serving')
  const clients: Crossings[] = inProcess ? Array.from({ length: nclients }, (_, i) => new LoadClient(port, i)) : remoteClients(port, nclients, clientsBin)
  const view = { before: [] as number[], after: [] as number[], spread: [] as number[], over: [] as number[] }
  const s = { downtime: [] as number[], pause: [] as number[], gap: [] as number[], gaps: [] as number[], wait: [] as number[], phases: new Map<string, number[]>(), each: [] as Array<Record<string, number | null>> }
  const paths = new Set<string>()
  try {
    for (let i = 0; i < warmup + runs; i++) {
      const next = startService(env)
      const serving = await next.wait('serving')
      if (serving.generation !== i + 2) throw new Error(`expected generation ${i + 2} to serve, got ${String(serving.generation)}`)
      const info = (await current.wait('handedOff')).info as Info
      const old = current.child
      if (old.exitCode === null && old.signalCode === null) await new Promise((resolve) => old.once('exit', resolve))
      const gaps = await Promise.all(clients.map(async (c) => await c.crossing(i + 2, 10_000)))
      if (i >= warmup) {
        s.downtime.push(info.downtimeMs ?? NaN)
        s.pause.push(info.pauseMs)
        s.gap.push(Math.max(...gaps))
        s.gaps.push(...gaps)
        s.wait.push(Math.max(...clients.map((c) => c.maxWaitMs)))
        for (const r of info.regions) paths.add(r.path)
        for (const [k, v] of Object.entries(info.phases ?? {})) if (v !== null) s.phases.set(k, [...s.phases.get(k) ?? [], v])
        s.each.push(info.phases ?? {})
        const v = clientView(info, clients, i + 2)
        if (v !== null) for (const k of Object.keys(view) as (keyof ClientView)[]) view[k].push(v[k])
      }
      for (const c of clients) c.maxWaitMs = 0
      current = next
    }
  } finally {
    for (const c of clients) c.close()
    current.child.kill('SIGTERM')
  }
  const phases = Object.fromEntries(PHASES.filter((p) => s.phases.has(p)).map((p) => [p, stats(s.phases.get(p) as number[])]))
  const viewStats = view.over.length > 0 ? { before: stats(view.before), after: stats(view.after), spread: stats(view.spread), over: stats(view.over) } : null
  return { view: viewStats, bytes, clients: nclients, downtime: stats(s.downtime), pause: stats(s.pause), clientGap: stats(s.gap), clientGaps: stats(s.gaps), windowMaxWait: stats(s.wait), phases, paths: [...paths], samples: { downtime: s.downtime, pause: s.pause, clientGap: s.gap, phases: s.each } }
}

/** Stop, write the state to /dev/shm, start a new process that reads it back: stop -> serving. */
async function baseline (bytes: number, runs: number): Promise<Stats> {
  const state = Buffer.alloc(bytes, 1)
  const file = join('/dev/shm', `pagegift-bench-${process.pid}`)
  const reader = `
    const fs = require('node:fs'); const n = ${bytes}; const buf = Buffer.allocUnsafe(n).fill(0);
    const fd = fs.openSync(process.argv[1], 'r'); let off = 0;
    while (off < n) off += fs.readSync(fd, buf, off, Math.min(n - off, 1 << 26), off);
    fs.closeSync(fd); process.stdout.write(String(process.hrtime.bigint()) + '\\n')`
  const samples: number[] = []
  try {
    for (let i = 0; i < runs; i++) {
      const stoppedAt = process.hrtime.bigint()
      const fd = openSync(file, 'w')
      for (let off = 0; off < bytes; off += 1 << 26) writeSync(fd, state, off, Math.min(bytes - off, 1 << 26))
      closeSync(fd)
      const out = await new Promise<string>((resolve, reject) => {
        const c = spawn(process.execPath, ['-e', reader, file], { stdio: ['ignore', 'pipe', 'inherit'] })
        let text = ''
        c.stdout.on('data', (d) => { text += String(d) })
        c.on('exit', (code) => code === 0 ? resolve(text) : reject(new Error(`baseline reader exited ${code}`)))
      })
      samples.push(Number(BigInt(out.trim()) - stoppedAt) / 1e6)
      rmSync(file, { force: true })
    }
  } finally {
    rmSync(file, { force: true })
  }
  return stats(samples)
}

function parseSize (s: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(s.trim())
  if (m === null) throw new RangeError(`bad size '${s}' (use e.g. 64m, 1g)`)
  return Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[m[2].toLowerCase()]
}

function flag (flags: string[], name: string): string | undefined {
  return flags.find((f) => f.startsWith(`--${name}=`))?.slice(name.length + 3)
}

export async function run (flags: string[]): Promise<void> {
  const quick = flags.includes('--quick')
  const sizes = (flag(flags, 'sizes') ?? (quick ? '64m,1g' : '64m,1g,4g')).split(',').map(parseSize)
  const runs = Number(flag(flags, 'handoffs') ?? flag(flags, 'runs') ?? (quick ? 5 : 20))
  const nclients = Number(flag(flags, 'clients') ?? 1)
  const baselineRuns = Number(flag(flags, 'baseline-runs') ?? (quick ? 2 : 5))
  root = flag(flags, 'service-root') ?? root
  inProcess = flags.includes('--clients-in-process')
  const sock = join(tmpdir(), `pagegift-bench-handoff-${process.pid}.sock`)
  // --c-clients: the load clients in C (bench/handoff-clients.c), whose own cost is next to nothing.
  const binDir = flags.includes('--c-clients') ? mkdtempSync(join(tmpdir(), 'pagegift-handoff-bin-')) : null
  const results: SizeResult[] = []
  try {
    const clientsBin = binDir !== null ? cClients(binDir) : undefined
    for (const bytes of sizes) {
      process.stdout.write(`handoff: ${formatBytes(bytes)} x ${runs} (+2 warm-up), ${nclients} ${clientsBin !== undefined ? 'C ' : ''}client(s), service from ${root} ...\n`)
      const h = await handoffs(bytes, runs, 2, sock, nclients, clientsBin)
      process.stdout.write(`baseline (/dev/shm file): ${formatBytes(bytes)} x ${baselineRuns} ...\n`)
      const b = baselineRuns > 0 ? await baseline(bytes, baselineRuns) : null
      // Free the baseline's buffer now, not in the middle of the next size's handoffs (the load clients run here).
      const collect = (globalThis as { gc?: () => void }).gc
      if (collect !== undefined) collect()
      results.push({ ...h, baseline: b })
    }
  } finally {
    if (binDir !== null) rmSync(binDir, { recursive: true, force: true })
  }
  report(results, root)
}

function report (results: SizeResult[], serviceRoot: string): void {
  const ms = (x: Stats | undefined): string => x !== undefined ? formatMs(x.median) : '-'
  printTable(results.map((r) => ({
    region: formatBytes(r.bytes),
    'downtime median': formatMs(r.downtime.median),
    'downtime p99': formatMs(r.downtime.p99),
    'pause to COMMIT': formatMs(r.pause.median),
    'client gap median': formatMs(r.clientGap.median),
    'client gap p99': formatMs(r.clientGap.p99),
    'client gap max': formatMs(r.clientGap.max),
    path: r.paths.join('+'),
    'baseline median': r.baseline !== null ? formatMs(r.baseline.median) : '-',
    speedup: r.baseline !== null ? `${(r.baseline.median / r.downtime.median).toFixed(0)}x` : '-',
    runs: r.downtime.runs,
  })))
  process.stdout.write('\npause by phase (medians; each from the end of the one before):\n')
  printTable(results.map((r) => ({ region: formatBytes(r.bytes), ...Object.fromEntries(PHASES.map((p) => [p, ms(r.phases[p])])), 'client gap min': formatMs(r.clientGap.min), 'window max wait median': formatMs(r.windowMaxWait.median) })))
  process.stdout.write('\nthe gap in the client\'s view (medians, worst client per handoff): last answer -> stopped, SERVING -> first answer, first -> last client served, gap minus downtime:\n')
  printTable(results.map((r) => ({ region: formatBytes(r.bytes), 'last answer -> stopped': ms(r.view?.before), 'SERVING -> first answer': ms(r.view?.after), 'SERVING -> first answer p99': r.view !== null ? formatMs(r.view.after.p99) : '-', 'clients served spread': ms(r.view?.spread), 'gap - downtime': ms(r.view?.over) })))
  const first = results[0]
  const last = results[results.length - 1]
  if (results.length > 1) process.stdout.write(`growth ${formatBytes(first.bytes)} -> ${formatBytes(last.bytes)}: ${(last.downtime.median / first.downtime.median).toFixed(2)}x\n`)
  const file = writeResults('handoff', { serviceRoot, results })
  const svg = file.replace(/\.json$/, '.svg')
  writeFileSync(svg, timelineSvg(results.map((r) => ({ label: formatBytes(r.bytes), phases: r.phases, clientGap: r.clientGap })), `One handoff by phase (medians of ${results[0].downtime.runs}, ${results[0].clients} client(s))`))
  process.stdout.write(`timeline: ${svg}\n`)
}
