/**
 * Runs Redis's own Tcl test suite (redis/redis tag 7.2.x, `runtest` + `tests/`, from a directory the
 * developer provides; nothing of Redis is in this repository) in external-server mode against
 * pagegift-kv (this checkout's source, through tsx) and against Debian's redis-server, unit by unit,
 * and prints a table: tests redis-server passed, how many of those pagegift-kv passed, and the ratio.
 *
 *   npm run test:redis-suite -- <suite dir> [--units unit/scan,unit/expire] [--json out.json]
 *
 * The exclusions (denied tags and skipped tests, each with its reason) are read from ONE file,
 * docs/redis-suite.md. Each unit gets a fresh server of each kind, on a free port with a temporary
 * directory; the suite is copied to a temporary directory, because runtest writes under tests/tmp.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import { freePort } from './kv/procs.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const UNITS = ['unit/type/incr', 'unit/type/string', 'unit/type/hash', 'unit/type/list', 'unit/type/set', 'unit/type/zset',
  'unit/expire', 'unit/keyspace', 'unit/multi', 'unit/pubsub', 'unit/protocol', 'unit/scan', 'unit/info-command']
/** Units whose data types another part of the work builds: reported apart until they land. */
export const TYPE_UNITS = new Set(['unit/type/hash', 'unit/type/list', 'unit/type/set', 'unit/type/zset'])
const UNIT_TIMEOUT_MS = 15 * 60_000

export interface Exclusions { tags: string[], tests: string[] }

/** Reads the exclusions from docs/redis-suite.md: lines "- tag `x` — reason" and "- test `name` — reason". */
export function readExclusions (path = join(ROOT, 'docs', 'redis-suite.md')): Exclusions {
  const out: Exclusions = { tags: [], tests: [] }
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^- (tag|test) `([^`]+)` — \S/.exec(line)
    if (m === null) continue
    if (m[1] === 'tag') out.tags.push(m[2])
    else out.tests.push(m[2])
  }
  return out
}

export interface UnitResult { ok: string[], err: string[], exception: boolean, output: string }

/** Parses runtest's output: "[ok]: name (n ms)", "[err]: name in file", "[exception]". */
export function parseRuntest (text: string): UnitResult {
  const r: UnitResult = { ok: [], err: [], exception: false, output: text }
  // eslint-disable-next-line no-control-regex
  for (const line of text.replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
    const ok = /^\[ok\]: (.*?)(?: \(\d+ ms\))?$/.exec(line)
    if (ok !== null) { r.ok.push(ok[1]); continue }
    const err = /^\[err\]: (.*?)(?: in tests\/.*)?$/.exec(line)
    if (err !== null) { r.err.push(err[1]); continue }
    if (/^\[exception\]/.test(line)) r.exception = true
  }
  return r
}

async function waitPort (port: number, proc: ChildProcess, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server on port ${port} exited with ${proc.exitCode}`)
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (up) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`nothing listens on port ${port} after ${ms} ms`)
}

interface Server { name: string, port: number, proc: ChildProcess, dir: string }

async function startServer (name: 'redis-server' | 'pagegift-kv'): Promise<Server> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), `suite-${name}-`))
  const proc = name === 'redis-server'
    ? spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--databases', '16'], { stdio: 'ignore' })
    : spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'tools', 'kv', 'serve-source.ts'), '--port', String(port)], { stdio: 'ignore', cwd: ROOT })
  await waitPort(port, proc)
  return { name, port, proc, dir }
}

async function stopServer (s: Server): Promise<void> {
  if (s.proc.exitCode === null && s.proc.signalCode === null) {
    const exited = new Promise((resolve) => s.proc.once('exit', resolve))
    s.proc.kill('SIGTERM')
    const t = setTimeout(() => s.proc.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(t)
  }
  rmSync(s.dir, { recursive: true, force: true })
}

/**
 * Runs `fn` against a server started for it alone. One server per unit: a unit that ends early on one
 * server (an unknown command ends it) skips its own clean-up, such as restoring the CONFIG it changed,
 * and would otherwise fail tests of the next unit on that server only.
 */
async function onFreshServer<T> (name: 'redis-server' | 'pagegift-kv', fn: (port: number) => Promise<T>): Promise<T> {
  const s = await startServer(name)
  try {
    return await fn(s.port)
  } finally {
    await stopServer(s)
  }
}

/**
 * A random --baseport per unit keeps two suite runs at the same time (two checkouts, two developers)
 * from clashing on the harness's default 21111. The harness wants its port p (from the 32 below
 * --baseport) and p + 10000 free, so the base stays under 41,200: above 55,567, p + 10000 is no port.
 */
function randomBaseport (): number {
  return 22_000 + 64 * Math.floor(Math.random() * 300)
}

/** Runs one unit against a server; resolves with the parsed results (a unit past its deadline is killed). */
async function runUnit (suite: string, unit: string, port: number, ex: Exclusions, skipfile: string): Promise<UnitResult> {
  // Another run can hold the harness's ports at that moment: then it stops at once, and another base is tried.
  for (let attempt = 1; ; attempt++) {
    const text = await runtest(suite, unit, port, ex, skipfile, randomBaseport())
    if (attempt === 3 || !text.includes("Can't find a non busy port")) return parseRuntest(text)
  }
}

/** One run of the harness (runtest is a shell script that only finds a tclsh and runs this); its output. */
async function runtest (suite: string, unit: string, port: number, ex: Exclusions, skipfile: string, baseport: number): Promise<string> {
  const args = ['tests/test_helper.tcl', '--host', '127.0.0.1', '--port', String(port), '--single', unit, '--timeout', '120',
    '--baseport', String(baseport),
    '--tags', ex.tags.map((t) => `-${t}`).join(' '), '--skipfile', skipfile]
  const p = spawn('tclsh', args, { cwd: suite, stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  p.stdout.on('data', (d) => { text += d.toString() })
  p.stderr.on('data', (d) => { text += d.toString() })
  const killer = setTimeout(() => { text += '\n[exception]: unit timed out\n'; p.kill('SIGKILL') }, UNIT_TIMEOUT_MS)
  await new Promise((resolve) => p.on('close', resolve))
  clearTimeout(killer)
  return text
}

export interface Row { unit: string, redis: number, kv: number, kvTotal: number, redisFailed: string[], kvFailed: string[] }

function table (rows: Row[]): string {
  const lines = ['| unit | redis-server passed | pagegift-kv passed (of those) | ratio | pagegift-kv passed (all) |', '|---|---:|---:|---:|---:|']
  const sum = (rs: Row[]): [number, number] => [rs.reduce((n, r) => n + r.redis, 0), rs.reduce((n, r) => n + r.kv, 0)]
  const pct = (a: number, b: number): string => b === 0 ? '-' : `${(100 * a / b).toFixed(1)}%`
  for (const r of rows) lines.push(`| ${r.unit} | ${r.redis} | ${r.kv} | ${pct(r.kv, r.redis)} | ${r.kvTotal} |`)
  for (const [label, rs] of [['total without the type units', rows.filter((r) => !TYPE_UNITS.has(r.unit))], ['total', rows]] as const) {
    const [a, b] = sum(rs)
    lines.push(`| **${label}** | ${a} | ${b} | ${pct(b, a)} | |`)
  }
  return lines.join('\n')
}

async function main (argv: string[]): Promise<number> {
  const suite = argv.find((a) => !a.startsWith('--'))
  if (suite === undefined) { process.stderr.write('usage: npm run test:redis-suite -- <redis tests dir (runtest + tests/)> [--units a,b] [--json out.json] [--also-skip file]\n'); return 2 }
  const unitsArg = argv[argv.indexOf('--units') + 1]
  const units = argv.includes('--units') ? unitsArg.split(',') : UNITS
  const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : null
  const ex = readExclusions()
  const work = mkdtempSync(join(tmpdir(), 'redis-suite-'))
  cpSync(join(suite, 'runtest'), join(work, 'runtest'))
  cpSync(join(suite, 'tests'), join(work, 'tests'), { recursive: true })
  const skipfile = join(work, 'skipfile.txt')
  // --also-skip <file>: more test names for this run only (say, ones that use a type not merged yet); reported as such.
  const also = argv.includes('--also-skip') ? readFileSync(argv[argv.indexOf('--also-skip') + 1], 'utf8').split('\n').filter((l) => l.trim() !== '') : []
  if (also.length > 0) process.stdout.write(`also skipping ${also.length} tests from ${argv[argv.indexOf('--also-skip') + 1]} (not part of the exclusions list)\n`)
  writeFileSync(skipfile, [...ex.tests, ...also].join('\n') + '\n')
  const rows: Row[] = []
  try {
    for (const unit of units) {
      const [redis, kv] = [await onFreshServer('redis-server', (port) => runUnit(work, unit, port, ex, skipfile)),
        await onFreshServer('pagegift-kv', (port) => runUnit(work, unit, port, ex, skipfile))]
      const kvOk = new Set(kv.ok)
      const row: Row = { unit, redis: redis.ok.length, kv: redis.ok.filter((t) => kvOk.has(t)).length, kvTotal: kv.ok.length, redisFailed: redis.err, kvFailed: redis.ok.filter((t) => !kvOk.has(t)) }
      rows.push(row)
      process.stdout.write(`${unit}: redis-server ${row.redis}, pagegift-kv ${row.kv} of those${kv.exception ? ' (pagegift-kv unit aborted by an exception)' : ''}\n`)
      const failed = new Set(kv.err)
      for (const t of row.kvFailed) process.stdout.write(`    ${failed.has(t) ? 'failed' : 'not run'}: ${t}\n`)
      if (redis.ok.length === 0) process.stdout.write(`    redis-server passed nothing; its run ended with:\n${redis.output.split('\n').slice(-8).map((l) => `    | ${l}\n`).join('')}`)
      if (kv.exception) process.stdout.write(kv.output.split('\n').filter((l) => /exception|Error|error/.test(l)).slice(0, 8).map((l) => `    | ${l}\n`).join(''))
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  process.stdout.write('\n' + table(rows) + '\n')
  if (jsonOut !== null) writeFileSync(jsonOut, JSON.stringify(rows, null, 2))
  return 0
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err) => { process.stderr.write(`${(err as Error).stack ?? String(err)}\n`); process.exitCode = 1 })
}
