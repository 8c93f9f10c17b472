/**
 * `npm run bench -- http`: an HTTP service with a big in-process cache (examples/http-cache-app.ts,
 * as node:http and as Express) under keep-alive load from 64 connections, reloaded back to back
 * (a gap of --gap-ms after each) by four methods: `pagegift upgrade` (--reloads times), and
 * `pm2 reload` (cluster mode, 2 instances), a Node cluster rolling restart and a plain stop and
 * start (--others-reloads times, by default as many). Then the steady throughput of the wrapped server against the same app listening plainly
 * (bench/http-throughput.ts).
 * Every method runs the app compiled to JavaScript, and every new process warms its request path
 * up with --warm-up requests to itself before it serves.
 * Flags: --reloads=K --gap-ms=ms --cache-mb=M --apps=node,express --methods=... --tp-runs=N
 *        --tp-sec=s --warm-up=N --others-reloads=K --quick
 */
import { spawn } from 'node:child_process'
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Pool } from 'undici'
import { printTable, stats, writeResults } from './lib.ts'
import { compileApp, Proc, root, sleep } from './http-proc.ts'
import { latencySvg } from './http-svg.ts'
import { printThroughput, sideBySide, throughput } from './http-throughput.ts'

const app = join(root, 'examples', 'http-cache-app.ts')

interface Opts { appJs: string, warmUp: number, reloads: number, othersReloads: number, gapMs: number, cacheMb: number, apps: string[], methods: string[], tpRuns: number, tpSec: number }

function parse (args: string[]): Opts {
  const get = (k: string, d: string): string => args.find((a) => a.startsWith(`--${k}=`))?.split('=')[1] ?? d
  const quick = args.includes('--quick')
  return {
    appJs: '',
    // Requests each new process sends itself before it serves (examples/http-cache-app.ts), whatever the method.
    warmUp: Number(get('warm-up', quick ? '500' : '3000')),
    // pagegift's reloads (and, unless --others-reloads says otherwise, every method's).
    reloads: Number(get('reloads', quick ? '3' : '100')),
    // pm2 and the cluster take 10 s a reload: --others-reloads=K gives them fewer, for time (the table says how many).
    othersReloads: Number(get('others-reloads', get('reloads', quick ? '3' : '100'))),
    // More than the 1 s after each reload that counts as its window, so windows never overlap.
    gapMs: Number(get('gap-ms', '1500')),
    cacheMb: Number(get('cache-mb', quick ? '64' : '1024')),
    apps: get('apps', 'node,express').split(',').filter(Boolean),
    methods: get('methods', 'pagegift,pm2,cluster,stopstart').split(',').filter(Boolean),
    tpRuns: Number(get('tp-runs', quick ? '2' : '8')),
    tpSec: Number(get('tp-sec', quick ? '3' : '5')),
  }
}

interface Sample { at: number, ms: number, ok: boolean, hit: boolean }

/** 64 keep-alive connections requesting random cache entries as fast as they are answered. */
class Load {
  readonly samples: Sample[] = []
  readonly errors: Record<string, number> = {}
  connects = 0
  non2xx = 0
  #stop = false
  #loops: Promise<void>[] = []
  readonly #pool: Pool
  readonly t0 = performance.now()
  constructor (port: number, keys: number) {
    this.#pool = new Pool(`http://127.0.0.1:${port}`, { connections: 64, pipelining: 1 })
    this.#pool.on('connect', () => { this.connects++ })
    for (let i = 0; i < 64; i++) this.#loops.push(this.#loop(keys))
  }

  async #loop (keys: number): Promise<void> {
    while (!this.#stop) {
      const start = performance.now()
      try {
        const r = await this.#pool.request({ path: `/k?i=${(Math.random() * keys) | 0}`, method: 'GET', headersTimeout: 10_000, bodyTimeout: 10_000 })
        await r.body.dump()
        if (r.statusCode !== 200) this.non2xx++
        this.samples.push({ at: start - this.t0, ms: performance.now() - start, ok: true, hit: r.headers['x-cache'] === 'hit' })
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'ERR'
        this.errors[code] = (this.errors[code] ?? 0) + 1
        this.samples.push({ at: start - this.t0, ms: performance.now() - start, ok: false, hit: false })
        await sleep(5)
      }
    }
  }

  now (): number { return performance.now() - this.t0 }
  async stop (): Promise<void> { this.#stop = true; await Promise.all(this.#loops); await this.#pool.destroy() }
}

/** When the service paused, from `pagegift upgrade --json`: its wall-clock end and length. */
interface Pause { endWall: number, ms: number, phases?: Record<string, number | null> }

/** One way of running and reloading the service. */
interface Method { start (): Promise<void>, reload (): Promise<Pause | 'rolled back' | void>, stop (): Promise<void> }

function methodFor (name: string, env: Record<string, string>, dir: string, appJs: string): Method {
  const entry = [appJs]
  let procs: Proc[] = []
  const killAll = async (): Promise<void> => { for (const p of procs) { try { process.kill(-(p.child.pid as number), 'SIGKILL') } catch {} } procs = [] }
  if (name === 'pagegift') {
    const e = { ...env, MODE: 'pagegift', SOCK: join(dir, 'h.sock') }
    return {
      start: async () => { const p = new Proc(process.execPath, entry, e); procs.push(p); await p.wait('serving') },
      reload: async () => {
        // A successor loading its modules on a busy 2-core machine can take longer than the CLI's 15 s default.
        const cli = await exec(process.execPath, [join(root, 'bin', 'pagegift.js'), 'upgrade', e.SOCK, '--json', '--timeout', '60000', '--', 'env', ...Object.entries(e).map(([k, v]) => `${k}=${v}`), process.execPath, ...entry])
        // A rollback leaves the old generation serving: counted, and the run goes on.
        if (cli.status === 1 && /rolled back/.test(cli.stderr)) return 'rolled back'
        if (cli.status !== 0) throw new Error(`pagegift upgrade failed: ${cli.stderr}`)
        const rec = (JSON.parse(cli.stdout.trim().split('\n').at(-1) as string) as { committed: { at: string, downtimeMs: number | null, pauseMs: number, phases?: Record<string, number | null> } }).committed
        return { endWall: Date.parse(rec.at), ms: rec.downtimeMs ?? rec.pauseMs, phases: rec.phases }
      },
      stop: async () => {
        await killAll()
        // Successors were started by the CLI: find each serving generation through `pagegift status`.
        for (let i = 0; i < 50; i++) {
          const st = await exec(process.execPath, [join(root, 'bin', 'pagegift.js'), 'status', e.SOCK, '--json'])
          if (st.status !== 0) break
          try { process.kill((JSON.parse(st.stdout) as { pid: number }).pid, 'SIGKILL') } catch {}
          await sleep(200)
        }
      },
    }
  }
  if (name === 'pm2') {
    const pm2 = join(root, 'node_modules', '.bin', 'pm2')
    const pe = { ...env, MODE: 'plain', PM2_HOME: join(dir, 'pm2') }
    const run = async (...a: string[]): Promise<void> => { const r = await exec(pm2, a, pe); if (r.status !== 0) throw new Error(`pm2 ${a[0]}: ${r.stderr}`) }
    return {
      start: async () => {
        // A one-line launcher imports the compiled app (an ES module) in each pm2 worker.
        const launcher = join(dir, 'launch.mjs')
        writeFileSync(launcher, `import ${JSON.stringify(pathToFileURL(appJs).href)}\n`)
        await run('start', launcher, '-i', '2', '--name', 'bench-http', '--kill-timeout', '5000'); await waitHttp(Number(env.PORT)) },
      reload: async () => { await run('reload', 'bench-http') },
      stop: async () => { await run('kill') },
    }
  }
  if (name === 'cluster') {
    let primary: Proc
    return {
      start: async () => { primary = new Proc(process.execPath, entry, { ...env, MODE: 'cluster' }); procs.push(primary); await primary.wait('serving') },
      reload: async () => { const n = primary.events.filter((x) => x.event === 'reloaded').length; process.kill(primary.child.pid as number, 'SIGHUP'); await primary.wait('reloaded', n + 1) },
      stop: killAll,
    }
  }
  let cur: Proc
  const launch = async (): Promise<void> => { cur = new Proc(process.execPath, entry, { ...env, MODE: 'plain' }); procs.push(cur); await cur.wait('serving') }
  return {
    start: launch,
    reload: async () => {
      const old = cur
      const gone = new Promise((resolve) => old.child.once('exit', resolve))
      old.child.kill('SIGTERM')
      await Promise.race([gone, sleep(10_000)])
      await launch()
    },
    stop: killAll,
  }
}

/** Runs a command without blocking the event loop (the load generator shares it). */
async function exec (cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<{ status: number | null, stdout: string, stderr: string }> {
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += String(d) })
  child.stderr.on('data', (d) => { stderr += String(d) })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const status = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  return { status, stdout, stderr }
}

async function waitHttp (port: number): Promise<void> {
  // Two instances filling 1 GiB each on a busy 2-core machine take minutes.
  for (let i = 0; i < 6000; i++) {
    try { const r = await fetch(`http://127.0.0.1:${port}/k?i=0`); await r.arrayBuffer(); return } catch { await sleep(100) }
  }
  throw new Error('bench http: the service never answered')
}

interface Row {
  app: string, method: string, reloads: number, rollbacks?: number, errors: number,
  /** Errors by kind (ECONNREFUSED, ECONNRESET, UND_ERR_HEADERS_TIMEOUT, ...). */
  errorKinds: Record<string, number>, non2xx: number, newConns: number,
  steadyP99: number, steadyMax: number, reloadP99: number, reloadMax: number,
  /** Spread over the reloads: the median and the worst of each reload's own window p99. */
  perReloadP99: { median: number, max: number },
  /** pagegift only: the service's pause (STOPPED to SERVING), and the p99 of requests in flight during it or in the second after, against the rest of the window. */
  pause?: { median: number, max: number, p99Around: number, p99Rest: number, phases: Record<string, number> },
  hitBefore: number, hitAfter: number, rps: number,
}

interface Run { row: Row, samples: Sample[], reloads: [number, number][] }

const ratio = (xs: Sample[]): number => xs.length === 0 ? NaN : xs.filter((s) => s.hit).length / xs.length

/** Runs one method on one app: warm steady load, then K reloads back to back, each followed by a gap. */
async function measure (appName: string, name: string, o: Opts, port: number): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-bench-http-'))
  const prefillFile = join(dir, 'prefill')
  writeFileSync(prefillFile, '')
  const env = { APP: appName, PORT: String(port), CACHE_MB: String(o.cacheMb), PREFILL_FILE: prefillFile, WARM_UP: String(o.warmUp) }
  const m = methodFor(name, env, dir, o.appJs)
  const count = name === 'pagegift' ? o.reloads : o.othersReloads
  const reloads: [number, number][] = []
  const pauses: [number, number][] = []
  const phases: Record<string, number>[] = []
  let load: Load | null = null
  let rollbacks = 0
  try {
    await m.start()
    rmSync(prefillFile) // every process started from now on starts with a cold cache, unless it inherits one
    load = new Load(port, o.cacheMb * 1024)
    await sleep(4000)
    for (let i = 0; i < count; i++) {
      const at = load.now()
      const p = await m.reload()
      reloads.push([at, load.now()])
      if (p === 'rolled back') rollbacks++
      else if (p !== undefined) {
        const end = p.endWall - (Date.now() - load.now())
        pauses.push([end - p.ms, end])
        if (p.phases !== undefined) phases.push(Object.fromEntries(Object.entries(p.phases).filter((e): e is [string, number] => e[1] !== null)))
      }
      await sleep(Math.max(1000, o.gapMs))
    }
    await sleep(2000)
  } finally {
    await load?.stop()
    await m.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  return { row: { ...summarize(appName, name, load, reloads, pauses, phases), rollbacks }, samples: load.samples, reloads }
}

const p99 = (xs: Sample[]): number => xs.length === 0 ? NaN : stats(xs.map((s) => s.ms)).p99

function summarize (appName: string, name: string, load: Load, reloads: [number, number][], pauses: [number, number][], phases: Record<string, number>[]): Row {
  const inReload = ([a, b]: [number, number], s: Sample): boolean => s.at >= a && s.at <= b + 1000
  const inWindow = (s: Sample): boolean => reloads.some((r) => inReload(r, s))
  const warm = load.samples.filter((s) => s.at > 3000)
  const steady = warm.filter((s) => !inWindow(s) && s.ok)
  const window = warm.filter(inWindow)
  const before = reloads.flatMap(([a]) => warm.filter((s) => s.at >= a - 1000 && s.at < a && s.ok))
  const after = reloads.flatMap(([, b]) => warm.filter((s) => s.at >= b && s.at < b + 1000 && s.ok))
  const steadyMs = (warm.at(-1)?.at ?? 0) - (warm[0]?.at ?? 0) - reloads.reduce((n, [a, b]) => n + (b + 1000 - a), 0)
  const st = stats(steady.map((s) => s.ms))
  const rl = window.length > 0 ? stats(window.map((s) => s.ms)) : st
  const each = reloads.map((r) => p99(warm.filter((s) => inReload(r, s)))).filter((x) => !Number.isNaN(x))
  const spread = each.length > 0 ? stats(each) : st
  const around = (s: Sample): boolean => pauses.some(([ps, pe]) => s.at < pe + 1000 && s.at + s.ms > ps)
  return {
    app: appName, method: name, reloads: reloads.length,
    errors: Object.values(load.errors).reduce((a, b) => a + b, 0), errorKinds: { ...load.errors }, non2xx: load.non2xx, newConns: load.connects - 64,
    steadyP99: st.p99, steadyMax: st.max, reloadP99: rl.p99, reloadMax: rl.max,
    perReloadP99: { median: spread.median, max: spread.max },
    ...(pauses.length > 0 ? { pause: { ...pick(stats(pauses.map(([a, b]) => b - a))), p99Around: p99(window.filter(around)), p99Rest: p99(window.filter((s) => !around(s))), phases: medianPhases(phases) } } : {}),
    hitBefore: ratio(before), hitAfter: ratio(after), rps: steady.length / (steadyMs / 1000),
  }
}

/** The median of each phase of the pause over the reloads (src/handoff/phases.ts). */
function medianPhases (all: Record<string, number>[]): Record<string, number> {
  const names = [...new Set(all.flatMap((p) => Object.keys(p)))]
  return Object.fromEntries(names.map((n) => [n, stats(all.map((p) => p[n]).filter((x) => x !== undefined)).median]))
}

const pick = (s: { median: number, max: number }): { median: number, max: number } => ({ median: s.median, max: s.max })

const fmt = (ms: number): string => `${ms.toFixed(1)} ms`
const pct = (x: number): string => Number.isNaN(x) ? '-' : `${(x * 100).toFixed(1)}%`

function printRows (results: Run[]): void {
  printTable(results.map(({ row: r }) => ({
    app: r.app, method: r.method, reloads: r.reloads, 'rolled back': r.rollbacks ?? 0, errors: r.errors,
    'errors by kind': Object.entries(r.errorKinds).map(([k, n]) => `${k} ${n}`).join(', ') || '-', non2xx: r.non2xx, 'new conns': r.newConns,
    'p99 steady': fmt(r.steadyP99), 'p99 reload': fmt(r.reloadP99), ratio: (r.reloadP99 / r.steadyP99).toFixed(2),
    'per-reload p99 med/max': `${fmt(r.perReloadP99.median)} / ${fmt(r.perReloadP99.max)}`,
    'max steady': fmt(r.steadyMax), 'max reload': fmt(r.reloadMax),
    'hit before': pct(r.hitBefore), 'hit 1st s after': pct(r.hitAfter), 'req/s steady': Math.round(r.rps),
  })))
  for (const { row: r } of results) {
    if (r.pause === undefined) continue
    process.stdout.write(`${r.app} / ${r.method}: pause median ${fmt(r.pause.median)}, max ${fmt(r.pause.max)}; window p99 of requests in flight during a pause or the second after ${fmt(r.pause.p99Around)}, of the rest of the window ${fmt(r.pause.p99Rest)}; median by phase: ${Object.entries(r.pause.phases).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')} ms\n`)
  }
}

export async function run (args: string[]): Promise<void> {
  const o = parse(args)
  const compiled = compileApp(app)
  o.appJs = compiled.entry
  try {
    await runAll(o)
  } finally {
    rmSync(compiled.dir, { recursive: true, force: true })
  }
}

async function runAll (o: Opts): Promise<void> {
  mkdirSync(join(root, 'bench', 'results'), { recursive: true })
  const seriesFile = join(root, 'bench', 'results', `http-series-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`)
  const port = 18000 + (process.pid % 1000)
  const results: Run[] = []
  for (const a of o.apps) {
    for (const m of o.methods) {
      process.stdout.write(`${a} / ${m}: ${m === 'pagegift' ? o.reloads : o.othersReloads} reloads, ${o.gapMs} ms apart, cache ${o.cacheMb} MiB...\n`)
      results.push(await measure(a, m, o, port))
      appendSeries(seriesFile, results[results.length - 1])
      printRows(results.slice(-1))
    }
  }
  if (results.length > 0) printRows(results)
  const tpo = { app: o.appJs, runs: o.tpRuns, sec: o.tpSec, port }
  const tp = o.tpRuns > 0 ? await throughput(tpo) : null
  if (tp !== null) printThroughput(tp, o.tpRuns, o.tpSec)
  const side = o.tpRuns > 0 ? await sideBySide(tpo) : null
  if (side !== null) printThroughput(side, o.tpRuns, o.tpSec)
  let svg: string | undefined
  if (results.length > 0) {
    svg = join(root, 'bench', 'results', `http-latency-${new Date().toISOString().replace(/[:.]/g, '-')}.svg`)
    const node = results.filter((r) => r.row.app === (o.apps.includes('node') ? 'node' : o.apps[0]))
    writeFileSync(svg, latencySvg(node.map((r) => ({ name: r.row.method, samples: r.samples, reloads: r.reloads }))))
    process.stdout.write(`latency plot: ${svg}\n`)
  }
  writeResults('http', { opts: o, rows: results.map((r) => r.row), throughput: tp, throughputSideBySide: side, svg, seriesFile })
}

/**
 * Appends one run's samples (start ms, latency ms, ok) and reload windows to a JSON-lines file, as
 * soon as the run ends: a full run holds millions of samples, too many for one JSON string, and a
 * failure later in a long run must not lose them. Runs made side by side can be plotted together.
 */
function appendSeries (file: string, r: Run): void {
  const samples = r.samples.map((x) => [Math.round(x.at), +x.ms.toFixed(2), x.ok ? 1 : 0])
  appendFileSync(file, JSON.stringify({ app: r.row.app, name: r.row.method, reloads: r.reloads, samples }) + '\n')
}
