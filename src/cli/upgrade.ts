/**
 * `pagegift upgrade <socket> [--timeout <ms>] [--json] -- <command ...>`: starts the next version of
 * the service serving at <socket>, streams its output, follows the handoff (progress where bytes are
 * copied), and reports the commit (downtime, bytes, path per region) or the rollback. A successor
 * that does not commit in time is killed; on any rollback the old version is still serving.
 */
import { spawn as spawnChild, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { status as queryStatus, watch, type Watch } from '../handoff/client.ts'
import type { HandoffRecord, WatchEvent } from '../handoff/types.ts'
import { formatBytes, formatMs } from './status.ts'

const USAGE = 'usage: pagegift upgrade <socket> [--timeout <ms>] [--json] -- <command ...>'
const DEFAULT_TIMEOUT_MS = 15_000

export interface UpgradeDeps {
  spawn: (cmd: string, args: string[], opts: SpawnOptions) => ChildProcess
  out: (s: string) => void
  err: (s: string) => void
}

const defaultDeps: UpgradeDeps = {
  spawn: spawnChild,
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
}

interface Args { socket: string, timeoutMs: number, json: boolean, command: string[] }

function parse (argv: string[]): Args | string {
  const dash = argv.indexOf('--')
  if (dash < 0 || dash === argv.length - 1) return 'missing "-- <command ...>"'
  const opts = argv.slice(0, dash)
  const out: Args = { socket: '', timeoutMs: DEFAULT_TIMEOUT_MS, json: false, command: argv.slice(dash + 1) }
  for (let i = 0; i < opts.length; i++) {
    const a = opts[i]
    if (a === '--json') out.json = true
    else if (a === '--timeout') {
      const v = Number(opts[++i])
      if (!(v > 0)) return '--timeout needs a positive number of ms'
      out.timeoutMs = v
    } else if (a.startsWith('-')) return `unknown option ${a}`
    else if (out.socket === '') out.socket = a
    else return `unexpected argument ${a}`
  }
  return out.socket === '' ? 'missing <socket>' : out
}

type Outcome = { kind: 'event', event: WatchEvent | null } | { kind: 'exit', code: number | null, signal: string | null } | { kind: 'timeout' }

/** Follows one handoff: the watch stream, the child's exit and the deadline, whichever speaks first. */
class Follower {
  #queue: Outcome[] = []
  #wake: (() => void) | null = null
  constructor (w: Watch, child: ChildProcess, timeoutMs: number) {
    const pump = async (): Promise<void> => {
      for (;;) {
        const event = await w.next().catch(() => null)
        this.#push({ kind: 'event', event })
        if (event === null) return
      }
    }
    void pump()
    child.once('exit', (code, signal) => this.#push({ kind: 'exit', code, signal }))
    setTimeout(() => this.#push({ kind: 'timeout' }), timeoutMs).unref()
  }

  #push (o: Outcome): void { this.#queue.push(o); this.#wake?.() }

  async next (): Promise<Outcome> {
    while (this.#queue.length === 0) await new Promise<void>((resolve) => { this.#wake = resolve })
    return this.#queue.shift() as Outcome
  }
}

function summary (r: HandoffRecord, successorView: number | null): string {
  const lines = [
    `committed: generation ${r.generation} (pid ${r.toPid}) is serving; pid ${r.fromPid} exits`,
    `downtime: ${formatMs(r.downtimeMs)} (stopped serving -> successor serving, CLOCK_MONOTONIC); predecessor pause to COMMIT ${formatMs(r.pauseMs)}${successorView !== null ? `; successor's view ${formatMs(successorView)}` : ''}`,
    `moved: ${formatBytes(r.bytes)} in ${r.regions.length} region(s), ${r.handles} handle(s)`,
    ...r.regions.map((x) => `  region ${x.name}  ${formatBytes(x.bytes)}  ${x.path}${x.reason !== undefined ? ` (${x.reason})` : ''}`),
  ]
  return lines.join('\n') + '\n'
}

export async function upgrade (argv: string[], deps: UpgradeDeps = defaultDeps): Promise<number> {
  const a = parse(argv)
  if (typeof a === 'string') {
    deps.err(`pagegift upgrade: ${a}\n${USAGE}\n`)
    return 2
  }
  let w: Watch
  try {
    w = await watch(a.socket)
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'ENOENT' || code === 'ECONNREFUSED') {
      deps.err(`pagegift upgrade: no generation is serving at ${a.socket} [${code}]: start the first one directly\n`)
      return 1
    }
    throw err
  }
  const old = w.status
  deps.err(`upgrading generation ${old.generation} (pid ${old.pid}${old.version !== '' ? `, ${old.version}` : ''}): starting ${a.command.join(' ')}\n`)
  const child = deps.spawn(a.command[0], a.command.slice(1), { stdio: 'inherit', detached: true })
  child.on('error', () => {})
  const follow = new Follower(w, child, a.timeoutMs)
  // The successor runs in its own process group: a wrapper (npx, sh -c) dies with the real process.
  const kill = (): void => {
    if (child.pid === undefined) return
    try { process.kill(-child.pid, 'SIGKILL') } catch { child.kill('SIGKILL') }
  }
  const onSignal = (): void => { kill() }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let exited: string | null = null
  let lastProgress = 0
  try {
    for (;;) {
      const o = await follow.next()
      if (o.kind === 'timeout') {
        kill()
        deps.err(`pagegift upgrade: no commit within ${a.timeoutMs} ms: killed the successor (pid ${child.pid})\n`)
        exited = exited ?? 'killed after the timeout'
        continue
      }
      if (o.kind === 'exit') {
        exited = o.signal !== null ? `killed by ${o.signal}` : `exited with code ${o.code}`
        // The predecessor notices the closed channel and resumes: its 'resumed' event says why.
        setTimeout(() => w.close(), 2000).unref()
        continue
      }
      const e = o.event
      if (e === null) {
        deps.err(`pagegift upgrade: lost the predecessor (pid ${old.pid}) without a commit or a rollback${exited !== null ? `; the successor ${exited}` : ''}\n`)
        kill()
        return 1
      }
      if (e.event === 'start') deps.err(`successor pid ${e.pid}${e.version !== '' ? ` (${e.version})` : ''} connected${e.pid !== child.pid ? ` (started pid ${child.pid})` : ''}\n`)
      if (e.event === 'progress' && (Date.now() - lastProgress > 200 || e.bytes === e.total)) {
        lastProgress = Date.now()
        deps.err(`  copying region ${e.region}: ${formatBytes(e.bytes)} / ${formatBytes(e.total)} (${(100 * e.bytes / e.total).toFixed(0)}%)\n`)
      }
      if (e.event === 'resumed') {
        kill()
        deps.err(`pagegift upgrade: rolled back: ${e.reason} [${e.code}]${exited !== null ? `; the successor ${exited}` : ''}. Generation ${old.generation} (pid ${old.pid}) is still serving.\n`)
        w.close()
        return 1
      }
      if (e.event === 'committed') {
        w.close()
        child.unref()
        const now = await queryStatus(a.socket, { retryMs: 2000 }).catch(() => null)
        const mine = now?.history.find((r) => r.generation === e.record.generation && r.toPid === e.record.toPid)
        deps.out(a.json ? JSON.stringify({ committed: e.record, successor: mine ?? null }) + '\n' : summary(e.record, mine?.downtimeMs ?? null))
        return 0
      }
    }
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

export async function run (argv: string[]): Promise<number> {
  const dash = argv.indexOf('--')
  const head = dash < 0 ? argv : argv.slice(0, dash)
  if (head.includes('-h') || head.includes('--help')) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  return await upgrade(argv)
}
