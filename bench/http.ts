/**
 * `npm run bench -- http`: an HTTP service with a big in-process cache (examples/http-cache-app.ts,
 * as node:http and as Express) under keep-alive load from 64 connections, reloaded K times in a
 * fixed window by four methods: `pagegift upgrade`, `pm2 reload` (cluster mode, 2 instances), a
 * Node cluster rolling restart, and a plain stop and start. Then the steady throughput of the
 * wrapped server against plain node:http (autocannon, median of alternating runs).
 * Flags: --window=s --reloads=K --cache-mb=M --apps=node,express --methods=... --tp-runs=N --tp-sec=s --quick
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'
import autocannon from 'autocannon'
import { Pool } from 'undici'
import { printTable, stats, writeResults } from './lib.ts'
import { latencySvg } from './http-svg.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const app = join(root, 'examples', 'http-cache-app.ts')
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface Opts { windowS: number, reloads: number, cacheMb: number, apps: string[], methods: string[], tpRuns: number, tpSec: number }

function parse (args: string[]): Opts {
  const get = (k: string, d: string): string => args.find((a) => a.startsWith(`--${k}=`))?.split('=')[1] ?? d
  const quick = args.includes('--quick')
  return {
    windowS: Number(get('window', quick ? '14' : '40')),
    reloads: Number(get('reloads', quick ? '2' : '5')),
    cacheMb: Number(get('cache-mb', quick ? '64' : '1024')),
    apps: get('apps', 'node,express').split(',').filter(Boolean),
    methods: get('methods', 'pagegift,pm2,cluster,stopstart').split(',').filter(Boolean),
    tpRuns: Number(get('tp-runs', quick ? '1' : '3')),
    tpSec: Number(get('tp-sec', quick ? '3' : '6')),
  }
}

/** A service process; its stdout is JSON lines. */
class Proc {
  readonly events: Record<string, unknown>[] = []
  readonly child: ChildProcess
  constructor (cmd: string, args: string[], env: Record<string, string>) {
    this.child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'], detached: true })
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (l) => { try { this.events.push(JSON.parse(l) as Record<string, unknown>) } catch {} })
  }

  async wait (event: string, count = 1, ms = 120_000): Promise<void> {
    const until = Date.now() + ms
    while (this.events.filter((e) => e.event === event).length < count) {
      if (Date.now() > until) throw new Error(`bench http: no '${event}' within ${ms} ms`)
      await sleep(20)
    }
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

/** One way of running and reloading the service. */
interface Method { start (): Promise<void>, reload (): Promise<void>, stop (): Promise<void> }

function methodFor (name: string, env: Record<string, string>, dir: string): Method {
  const tsx = ['--import', 'tsx', app]
  let procs: Proc[] = []
  const killAll = async (): Promise<void> => { for (const p of procs) { try { process.kill(-(p.child.pid as number), 'SIGKILL') } catch {} } procs = [] }
  if (name === 'pagegift') {
    const e = { ...env, MODE: 'pagegift', SOCK: join(dir, 'h.sock') }
    return {
      start: async () => { const p = new Proc(process.execPath, tsx, e); procs.push(p); await p.wait('serving') },
      reload: async () => {
        const cli = await exec(process.execPath, [join(root, 'bin', 'pagegift.js'), 'upgrade', e.SOCK, '--', 'env', ...Object.entries(e).map(([k, v]) => `${k}=${v}`), process.execPath, ...tsx])
        if (cli.status !== 0) throw new Error(`pagegift upgrade failed: ${cli.stderr}`)
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
        // pm2 refuses .ts files on Node 20: a one-line JavaScript launcher imports the app through tsx.
        const launcher = join(dir, 'launch.mjs')
        writeFileSync(launcher, `import ${JSON.stringify(pathToFileURL(app).href)}\n`)
        await run('start', launcher, '-i', '2', '--name', 'bench-http', '--node-args=--import tsx', '--kill-timeout', '5000'); await waitHttp(Number(env.PORT)) },
      reload: async () => { await run('reload', 'bench-http') },
      stop: async () => { await run('kill') },
    }
  }
  if (name === 'cluster') {
    let primary: Proc
    return {
      start: async () => { primary = new Proc(process.execPath, tsx, { ...env, MODE: 'cluster' }); procs.push(primary); await primary.wait('serving') },
      reload: async () => { const n = primary.events.filter((x) => x.event === 'reloaded').length; process.kill(primary.child.pid as number, 'SIGHUP'); await primary.wait('reloaded', n + 1) },
      stop: killAll,
    }
  }
  let cur: Proc
  const launch = async (): Promise<void> => { cur = new Proc(process.execPath, tsx, { ...env, MODE: 'plain' }); procs.push(cur); await cur.wait('serving') }
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
  for (let i = 0; i < 600; i++) {
    try { const r = await fetch(`http://127.0.0.1:${port}/k?i=0`); await r.arrayBuffer(); return } catch { await sleep(100) }
  }
  throw new Error('bench http: the service never answered')
}

interface Row { app: string, method: string, reloads: number, errors: number, non2xx: number, newConns: number, steadyP99: number, steadyMax: number, reloadP99: number, reloadMax: number, hitBefore: number, hitAfter: number, rps: number }

const ratio = (xs: Sample[]): number => xs.length === 0 ? NaN : xs.filter((s) => s.hit).length / xs.length

/** Runs one method on one app: warm steady load, then K reloads spread over the window. */
async function measure (appName: string, name: string, o: Opts, port: number): Promise<{ row: Row, samples: Sample[], reloads: [number, number][] }> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-bench-http-'))
  const prefillFile = join(dir, 'prefill')
  writeFileSync(prefillFile, '')
  const env = { APP: appName, PORT: String(port), CACHE_MB: String(o.cacheMb), PREFILL_FILE: prefillFile }
  const m = methodFor(name, env, dir)
  await m.start()
  rmSync(prefillFile) // every process started from now on starts with a cold cache, unless it inherits one
  const load = new Load(port, o.cacheMb * 1024)
  const reloads: [number, number][] = []
  try {
    await sleep(3000)
    const gap = ((o.windowS - 5) * 1000) / o.reloads
    for (let i = 0; i < o.reloads; i++) {
      const at = load.now()
      await m.reload()
      reloads.push([at, load.now()])
      await sleep(Math.max(1000, gap - (load.now() - at)))
    }
    await sleep(1000)
  } finally {
    await load.stop()
    await m.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  return { row: summarize(appName, name, load, reloads), samples: load.samples, reloads }
}

function summarize (appName: string, name: string, load: Load, reloads: [number, number][]): Row {
  const inWindow = (s: Sample): boolean => reloads.some(([a, b]) => s.at >= a && s.at <= b + 1000)
  const warm = load.samples.filter((s) => s.at > 2000)
  const steady = warm.filter((s) => !inWindow(s) && s.ok)
  const window = warm.filter(inWindow)
  const before = reloads.flatMap(([a]) => warm.filter((s) => s.at >= a - 1000 && s.at < a && s.ok))
  const after = reloads.flatMap(([, b]) => warm.filter((s) => s.at >= b && s.at < b + 1000 && s.ok))
  const steadyMs = (warm.at(-1)?.at ?? 0) - (warm[0]?.at ?? 0) - reloads.reduce((n, [a, b]) => n + (b + 1000 - a), 0)
  const st = stats(steady.map((s) => s.ms))
  const rl = window.length > 0 ? stats(window.map((s) => s.ms)) : st
  return {
    app: appName, method: name, reloads: reloads.length,
    errors: Object.values(load.errors).reduce((a, b) => a + b, 0), non2xx: load.non2xx, newConns: load.connects - 64,
    steadyP99: st.p99, steadyMax: st.max, reloadP99: rl.p99, reloadMax: rl.max,
    hitBefore: ratio(before), hitAfter: ratio(after), rps: steady.length / (steadyMs / 1000),
  }
}

/** Steady throughput, autocannon, 64 connections: the wrapped server against plain node:http, alternating. */
async function throughput (o: Opts, port: number): Promise<{ plain: number[], pagegift: number[] }> {
  const out = { plain: [] as number[], pagegift: [] as number[] }
  for (let run = 0; run < o.tpRuns; run++) {
    for (const mode of run % 2 === 0 ? ['plain', 'pagegift'] as const : ['pagegift', 'plain'] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'pg-bench-tp-'))
      writeFileSync(join(dir, 'prefill'), '')
      const p = new Proc(process.execPath, ['--import', 'tsx', app], { APP: 'node', MODE: mode, PORT: String(port), CACHE_MB: '64', PREFILL_FILE: join(dir, 'prefill'), SOCK: join(dir, 'h.sock') })
      try {
        await p.wait('serving')
        const r = await autocannon({ url: `http://127.0.0.1:${port}/k?i=7`, connections: 64, duration: o.tpSec })
        out[mode].push(r.requests.average)
      } finally {
        try { process.kill(-(p.child.pid as number), 'SIGKILL') } catch {}
        await sleep(300)
        rmSync(dir, { recursive: true, force: true })
      }
    }
  }
  return out
}

const fmt = (ms: number): string => `${ms.toFixed(1)} ms`
const pct = (x: number): string => Number.isNaN(x) ? '-' : `${(x * 100).toFixed(1)}%`

export async function run (args: string[]): Promise<void> {
  const o = parse(args)
  const port = 18000 + (process.pid % 1000)
  const results: { row: Row, samples: Sample[], reloads: [number, number][] }[] = []
  for (const a of o.apps) {
    for (const m of o.methods) {
      process.stdout.write(`${a} / ${m}: ${o.reloads} reloads in ${o.windowS} s, cache ${o.cacheMb} MiB...\n`)
      results.push(await measure(a, m, o, port))
    }
  }
  printTable(results.map(({ row: r }) => ({
    app: r.app, method: r.method, reloads: r.reloads, errors: r.errors, non2xx: r.non2xx, 'new conns': r.newConns,
    'p99 steady': fmt(r.steadyP99), 'p99 reload': fmt(r.reloadP99), 'max steady': fmt(r.steadyMax), 'max reload': fmt(r.reloadMax),
    'hit before': pct(r.hitBefore), 'hit 1st s after': pct(r.hitAfter), 'req/s steady': Math.round(r.rps),
  })))
  const tp = await throughput(o, port)
  const med = (xs: number[]): number => stats(xs).median
  const cost = 1 - med(tp.pagegift) / med(tp.plain)
  process.stdout.write(`steady throughput (autocannon, 64 connections, ${o.tpRuns} alternating runs of ${o.tpSec} s): plain node:http ${Math.round(med(tp.plain))} req/s, wrapped ${Math.round(med(tp.pagegift))} req/s, cost ${(cost * 100).toFixed(1)}%\n`)
  if (results.length === 0) { writeResults('http', { opts: o, rows: [], throughput: { ...tp, cost } }); return }
  const svg = join(root, 'bench', 'results', `http-latency-${new Date().toISOString().replace(/[:.]/g, '-')}.svg`)
  const node = results.filter((r) => r.row.app === (o.apps.includes('node') ? 'node' : o.apps[0]))
  writeFileSync(svg, latencySvg(node.map((r) => ({ name: r.row.method, samples: r.samples, reloads: r.reloads }))))
  process.stdout.write(`latency plot: ${svg}\n`)
  writeResults('http', { opts: o, rows: results.map((r) => r.row), throughput: { ...tp, cost }, svg })
}
