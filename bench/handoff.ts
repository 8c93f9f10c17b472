/**
 * `npm run bench -- handoff [--sizes=64m,1g,4g] [--runs=20] [--baseline-runs=5] [--quick]`
 *
 * A TCP service (tools/handoff-service.ts) whose state is one giftable region of each size
 * hands over to a fresh copy of itself, again and again, while a client keeps sending requests.
 * Downtime runs from "stopped serving" in the old generation to "serving" in the new one, both
 * CLOCK_MONOTONIC. The client gap is what the load client saw: per handoff, the longest it waited
 * for an answer (from sending a request to its answer). The baseline is what a user would otherwise do: stop, write the state to a file
 * on /dev/shm, start the new version, read the file back.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, rmSync, writeSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { formatBytes, formatMs, printTable, stats, writeResults, type Stats } from './lib.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const fixture = join(root, 'tools', 'handoff-service.ts')

interface Service { child: ChildProcess, events: Record<string, unknown>[], wait: (event: string, ms?: number) => Promise<Record<string, unknown>> }

function startService (env: Record<string, string>): Service {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const events: Record<string, unknown>[] = []
  let wake: (() => void) | null = null
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try { events.push(JSON.parse(line) as Record<string, unknown>) } catch { return }
    wake?.()
  })
  child.once('exit', () => wake?.())
  const wait = async (event: string, ms = 120_000): Promise<Record<string, unknown>> => {
    const until = Date.now() + ms
    for (;;) {
      const e = events.find((x) => x.event === event)
      if (e !== undefined) return e
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`service pid ${child.pid} exited before '${event}'`)
      if (Date.now() > until) throw new Error(`service pid ${child.pid}: no '${event}' within ${ms} ms`)
      await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, 100) })
    }
  }
  return { child, events, wait }
}

/** A client sending one request at a time; records the longest wait for an answer. */
class LoadClient {
  #socket: net.Socket
  #sentAt = 0n
  #buf = ''
  answered = 0
  maxGapMs = 0
  failed: string | null = null
  constructor (port: number) {
    this.#socket = net.connect(port, '127.0.0.1')
    this.#socket.on('error', (err) => { this.failed = err.message })
    this.#socket.on('close', () => { this.failed ??= 'closed' })
    this.#socket.on('data', (d) => {
      this.#buf += d.toString()
      let nl: number
      while ((nl = this.#buf.indexOf('\n')) >= 0) {
        this.#buf = this.#buf.slice(nl + 1)
        this.answered++
        const gap = Number(process.hrtime.bigint() - this.#sentAt) / 1e6
        if (gap > this.maxGapMs) this.maxGapMs = gap
        this.#send()
      }
    })
    this.#send()
  }

  #send (): void { this.#sentAt = process.hrtime.bigint(); this.#socket.write('INC 1\n') }
  close (): void { this.#socket.removeAllListeners('close'); this.#socket.destroy() }
}

/** clientGap: per handoff, the longest any request of the load client waited for its answer (what a client sees). */
interface SizeResult { bytes: number, downtime: Stats, pause: Stats, clientGap: Stats, baseline: Stats | null, paths: string[] }

async function handoffs (bytes: number, runs: number, warmup: number, sock: string): Promise<Omit<SizeResult, 'baseline'>> {
  rmSync(sock, { force: true })
  const env = { HANDOFF_SOCK: sock, HANDOFF_REGION_BYTES: String(bytes), HANDOFF_TOUCH: '1', HANDOFF_VERSION: 'bench' }
  let current = startService(env)
  const { port } = await current.wait('listening') as { port: number }
  await current.wait('serving')
  const client = new LoadClient(port)
  const downtimes: number[] = []
  const pauses: number[] = []
  const paths = new Set<string>()
  const gaps: number[] = []
  try {
    for (let i = 0; i < warmup + runs; i++) {
      const next = startService(env)
      const serving = await next.wait('serving')
      if (serving.generation !== i + 2) throw new Error(`expected generation ${i + 2} to serve, got ${String(serving.generation)}`)
      const info = (await current.wait('handedOff')).info as { downtimeMs: number | null, pauseMs: number, regions: { path: string }[] }
      const old = current.child
      if (old.exitCode === null && old.signalCode === null) await new Promise((resolve) => old.once('exit', resolve))
      if (i >= warmup) {
        downtimes.push(info.downtimeMs ?? NaN)
        pauses.push(info.pauseMs)
        for (const r of info.regions) paths.add(r.path)
        gaps.push(client.maxGapMs)
      }
      client.maxGapMs = 0
      if (client.failed !== null) throw new Error(`load client: ${client.failed}`)
      current = next
    }
  } finally {
    client.close()
    current.child.kill('SIGTERM')
  }
  return { bytes, downtime: stats(downtimes), pause: stats(pauses), clientGap: stats(gaps), paths: [...paths] }
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
  const runs = Number(flag(flags, 'runs') ?? (quick ? 5 : 20))
  const baselineRuns = Number(flag(flags, 'baseline-runs') ?? (quick ? 2 : 5))
  const sock = join(tmpdir(), `pagegift-bench-handoff-${process.pid}.sock`)
  const results: SizeResult[] = []
  for (const bytes of sizes) {
    process.stdout.write(`handoff: ${formatBytes(bytes)} x ${runs} (+2 warm-up) ...\n`)
    const h = await handoffs(bytes, runs, 2, sock)
    process.stdout.write(`baseline (/dev/shm file): ${formatBytes(bytes)} x ${baselineRuns} ...\n`)
    const b = baselineRuns > 0 ? await baseline(bytes, baselineRuns) : null
    // Free the baseline's buffer now, not in the middle of the next size's handoffs (the load client runs here).
    const collect = (globalThis as { gc?: () => void }).gc
    if (collect !== undefined) collect()
    results.push({ ...h, baseline: b })
  }
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
  const first = results[0]
  const last = results[results.length - 1]
  if (results.length > 1) process.stdout.write(`growth ${formatBytes(first.bytes)} -> ${formatBytes(last.bytes)}: ${(last.downtime.median / first.downtime.median).toFixed(2)}x\n`)
  writeResults('handoff', results)
}
