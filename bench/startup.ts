/**
 * `npm run bench -- startup [--runs=15] [--upgrades=10] [--old=<checkout>]`
 *
 * How long the commands take to start, against `node -e 0` in the same run: `pagegift --version`
 * and `pagegift doctor` (spawn to exit) and `pagegift-kv` (spawn to listening). The cases are
 * interleaved run by run, so load on the machine hits them alike. Target: within 1.5x of node -e 0.
 *
 * Then `pagegift upgrade` of a small service (an empty pagegift-kv) from command start to its
 * "committed" line, back to back. With --old=<dir>, the same is measured for a checkout of an older
 * version whose bins run through tsx (e.g. `git worktree add /tmp/old 202bb52`, node_modules linked).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatMs, nowMs, printTable, stats, writeResults, type Stats } from './lib.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const TARGET = 1.5

interface Case { name: string, argv: string[], until?: RegExp }

/** Spawns argv and resolves with the ms until it exits (or until its stdout matches `until`, then stops it). */
function timeOne (c: Case, timeoutMs = 60_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs()
    const child = spawn(process.execPath, c.argv, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], timeout: timeoutMs, killSignal: 'SIGKILL' })
    let out = ''
    let at = 0
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (c.until !== undefined && at === 0 && c.until.test(out)) {
        at = nowMs() - t0
        child.kill('SIGTERM')
      }
    })
    child.on('exit', (code, signal) => {
      const ms = c.until !== undefined ? at : nowMs() - t0
      if (ms > 0 && (c.until !== undefined || code === 0)) resolve(ms)
      else reject(new Error(`${c.name}: exit ${code ?? signal}\n${out.slice(-1000)}`))
    })
  })
}

function startupCases (): Case[] {
  return [
    { name: 'node -e 0', argv: ['-e', '0'] },
    { name: 'pagegift --version', argv: [join(root, 'bin', 'pagegift.js'), '--version'] },
    { name: 'pagegift doctor', argv: [join(root, 'bin', 'pagegift.js'), 'doctor'] },
    { name: 'pagegift-kv (to listening)', argv: [join(root, 'bin', 'pagegift-kv.js'), '--port', '0'], until: /serving on/ },
  ]
}

/** Runs every case once per round, `warmup` unmeasured rounds first. */
async function interleaved (cases: Case[], runs: number, warmup: number): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]))
  for (let round = 0; round < warmup + runs; round++) {
    for (const c of cases) {
      const ms = await timeOne(c)
      if (round >= warmup) samples.get(c.name)?.push(ms)
    }
  }
  return samples
}

/** Upgrades one pagegift-kv `n` times in a row with the bins of `checkout`; ms from spawn to "committed". */
async function upgrades (checkout: string, n: number): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'pagegift-startup-'))
  const sock = join(dir, 'h.sock')
  const kv = [join(checkout, 'bin', 'pagegift-kv.js'), '--port', '0', '--handoff', sock]
  const first = spawn(process.execPath, kv, { cwd: checkout, stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000, killSignal: 'SIGKILL' })
  let last = first.pid ?? 0
  const out: number[] = []
  try {
    await new Promise<void>((resolve, reject) => {
      let text = ''
      first.stdout.on('data', (d: Buffer) => { text += d.toString(); if (/serving on/.test(text)) resolve() })
      first.once('exit', () => reject(new Error(`pagegift-kv exited before serving: ${text}`)))
    })
    for (let i = 0; i < n; i++) {
      const c: Case = { name: 'pagegift upgrade', argv: [join(checkout, 'bin', 'pagegift.js'), 'upgrade', sock, '--', process.execPath, ...kv], until: /committed: generation \d+ \(pid (\d+)\)/ }
      const r = await upgradeOnce(c)
      out.push(r.ms)
      last = r.pid
    }
  } finally {
    if (last > 0) try { process.kill(last, 'SIGTERM') } catch {}
    first.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  return out
}

/** One `pagegift upgrade`: the CLI exits after the commit; the successor it started keeps serving. */
function upgradeOnce (c: Case): Promise<{ ms: number, pid: number }> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs()
    const cli = spawn(process.execPath, c.argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, killSignal: 'SIGKILL' })
    let text = ''
    let done = false
    const onData = (d: Buffer): void => {
      text += d.toString()
      const m = c.until?.exec(text)
      if (m != null && !done) { done = true; resolve({ ms: nowMs() - t0, pid: Number(m[1]) }) }
    }
    cli.stdout.on('data', onData)
    cli.stderr.on('data', onData)
    cli.on('exit', (code) => { if (!done) reject(new Error(`pagegift upgrade: exit ${code}\n${text.slice(-2000)}`)) })
  })
}

const row = (name: string, s: Stats, base: Stats | null): Record<string, string> => ({
  command: name,
  median: formatMs(s.median),
  min: formatMs(s.min),
  max: formatMs(s.max),
  runs: String(s.runs),
  'x node -e 0': base === null ? '' : (s.median / base.median).toFixed(2),
  target: base === null || name === 'node -e 0' ? '' : (s.median / base.median <= TARGET ? `<= ${TARGET} ok` : `> ${TARGET} MISSED`),
})

export async function run (args: string[]): Promise<void> {
  const flag = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
  const runs = Math.max(10, Number(flag('runs') ?? 15))
  const n = Number(flag('upgrades') ?? 10)
  const old = flag('old')
  const samples = await interleaved(startupCases(), runs, 2)
  const base = stats(samples.get('node -e 0') ?? [])
  const results: Record<string, Stats> = {}
  for (const [name, s] of samples) results[name] = stats(s)
  printTable(Object.entries(results).map(([name, s]) => row(name, s, base)))

  const upgradeRows: Record<string, Stats> = {}
  if (old !== undefined) upgradeRows[`pagegift upgrade, ${old} (tsx)`] = stats(await upgrades(old, n))
  upgradeRows['pagegift upgrade, this checkout'] = stats(await upgrades(root, n))
  process.stdout.write('\n')
  printTable(Object.entries(upgradeRows).map(([name, s]) => row(name, s, null)))
  writeResults('startup', { runs, target: TARGET, startup: results, upgrade: upgradeRows })
}
