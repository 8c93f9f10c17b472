/**
 * `pagegift upgrade <socket> [--timeout <ms>] [--json] -- <command ...>`: starts the next version of
 * the service serving at <socket>, streams its output, follows the handoff (progress where bytes are
 * copied), and reports the commit (downtime, bytes, path per region) or the rollback. When the
 * timeout passes, it asks the serving generation (with the service key) to commit to nobody, and
 * kills the successor only once that generation has agreed: a successor that was sent COMMIT is
 * never killed. On any rollback the old version is still serving.
 */
import { spawn as spawnChild, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { status as queryStatus, watch, type Watch } from '../handoff/client.ts'
import { readKey } from '../handoff/key.ts'
import type { HandoffRecord, WatchEvent } from '../handoff/types.ts'
import { describePhases, formatBytes, formatMs } from './status.ts'

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

type Outcome = { kind: 'event', event: WatchEvent | null } | { kind: 'exit', code: number | null, signal: string | null } | { kind: 'cancel', why: string }

/** Follows one handoff: the watch stream, the child's exit, the deadline and signals, whichever speaks first. */
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
    setTimeout(() => this.#push({ kind: 'cancel', why: `no commit within ${timeoutMs} ms` }), timeoutMs).unref()
  }

  push (o: Outcome): void { this.#push(o) }
  #push (o: Outcome): void { this.#queue.push(o); this.#wake?.() }

  async next (ms: number): Promise<Outcome | null> {
    const until = Date.now() + ms
    while (this.#queue.length === 0) {
      if (Date.now() >= until) return null
      await new Promise<void>((resolve) => { this.#wake = resolve; setTimeout(resolve, Math.min(1000, until - Date.now())).unref() })
    }
    return this.#queue.shift() as Outcome
  }
}

/** `mine`: the successor's own record of the handoff (its phases include its gate opening), if it answered. */
function summary (r: HandoffRecord, mine: HandoffRecord | null): string {
  const phases = mine?.phases ?? r.phases
  const lines = [
    `committed: generation ${r.generation} (pid ${r.toPid}) is serving; pid ${r.fromPid} exits`,
    `downtime: ${formatMs(r.downtimeMs)} (stopped serving -> successor serving, CLOCK_MONOTONIC); predecessor pause to COMMIT ${formatMs(r.pauseMs)}${mine !== null ? `; successor's view ${formatMs(mine.downtimeMs)}` : ''}`,
    ...(phases !== undefined ? [`pause by phase: ${describePhases(phases)}`] : []),
    `moved: ${formatBytes(r.bytes)} in ${r.regions.length} region(s), ${r.handles} handle(s)`,
    ...r.regions.map((x) => `  region ${x.name}  ${formatBytes(x.bytes)}  ${x.path}${x.reason !== undefined ? ` (${x.reason})` : ''}`),
  ]
  return lines.join('\n') + '\n'
}

/** How long to wait, after our own deadline, for the serving generation to settle a handoff it committed to. */
const SETTLE_MS = 30_000

/** What the follower knows about the handoff so far; only the serving generation decides its outcome. */
interface Progress { started: boolean, committing: boolean, killed: boolean, exited: string | null, cancelling: string | null, lastProgress: number }

async function watchKey (socket: string, deps: UpgradeDeps): Promise<{ w: Watch } | number> {
  let key: string | null
  try {
    key = readKey(socket)
  } catch (err) {
    deps.err(`pagegift upgrade: ${(err as Error).message} [${(err as { code?: string }).code}]\n`)
    return 1
  }
  try {
    return { w: await watch(socket, { key }) }
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'ENOENT' || code === 'ECONNREFUSED') {
      deps.err(`pagegift upgrade: no generation is serving at ${socket} [${code}]: start the first one directly\n`)
      return 1
    }
    throw err
  }
}

export async function upgrade (argv: string[], deps: UpgradeDeps = defaultDeps): Promise<number> {
  const a = parse(argv)
  if (typeof a === 'string') {
    deps.err(`pagegift upgrade: ${a}\n${USAGE}\n`)
    return 2
  }
  const watched = await watchKey(a.socket, deps)
  if (typeof watched === 'number') return watched
  const { w } = watched
  const old = w.status
  deps.err(`upgrading generation ${old.generation} (pid ${old.pid}${old.version !== '' ? `, ${old.version}` : ''}): starting ${a.command.join(' ')}\n`)
  const child = deps.spawn(a.command[0], a.command.slice(1), { stdio: 'inherit', detached: true })
  child.on('error', () => {})
  const follow = new Follower(w, child, a.timeoutMs)
  const onSignal = (): void => { follow.push({ kind: 'cancel', why: 'interrupted' }) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    return await follow_(a, deps, w, child, follow)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    w.close()
  }
}

const stillServing = (old: Watch['status']): string => `Generation ${old.generation} (pid ${old.pid}) is still serving.`

async function follow_ (a: Args, deps: UpgradeDeps, w: Watch, child: ChildProcess, follow: Follower): Promise<number> {
  const old = w.status
  const p: Progress = { started: false, committing: false, killed: false, exited: null, cancelling: null, lastProgress: 0 }
  // The successor runs in its own process group: a wrapper (npx, sh -c) dies with the real process.
  const kill = (): void => {
    if (child.pid === undefined) return
    p.killed = true
    try { process.kill(-child.pid, 'SIGKILL') } catch { child.kill('SIGKILL') }
  }
  for (;;) {
    const o = await follow.next(p.cancelling !== null || p.exited !== null ? SETTLE_MS : 2 ** 31 - 1)
    if (o === null) {
      deps.err(`pagegift upgrade: the serving generation settled nothing within ${SETTLE_MS / 1000} s${p.committing ? ' after it sent COMMIT' : ''}; check \`pagegift status ${a.socket}\`${p.exited !== null ? `; the successor ${p.exited}` : ''}\n`)
      return 1
    }
    if (o.kind === 'cancel') {
      if (p.cancelling !== null) continue
      p.cancelling = o.why
      if (p.committing) {
        deps.err(`pagegift upgrade: ${o.why}, but COMMIT was already sent: the successor (pid ${child.pid}) is left alone; waiting for the outcome\n`)
        continue
      }
      if (w.version < 2) {
        deps.err(`pagegift upgrade: ${o.why}; the serving generation speaks protocol ${w.version}, which cannot hold off a commit, so the successor (pid ${child.pid}) is left running\n`)
        return 1
      }
      // The serving generation decides: it sends no COMMIT from now on, unless one already went out.
      await w.fence().catch(() => {})
      continue
    }
    if (o.kind === 'exit') {
      p.exited = o.signal !== null ? `killed by ${o.signal}` : `exited with code ${o.code}`
      if (!p.started) {
        deps.err(`pagegift upgrade: rolled back: the successor (pid ${child.pid}) ${p.exited} before it asked for the handoff; nothing was handed over. ${stillServing(old)}\n`)
        return 1
      }
      continue
    }
    const e = o.event
    if (e === null) {
      deps.err(`pagegift upgrade: lost the predecessor (pid ${old.pid}) without a commit or a rollback${p.committing ? ' after it sent COMMIT (the successor was left alone)' : ''}${p.exited !== null ? `; the successor ${p.exited}` : ''}\n`)
      return 1
    }
    const done = onEvent(a, deps, w, child, p, e, kill)
    if (done !== null) return await done
  }
}

/** One event of the serving generation; a number (or its promise) once the upgrade is settled. */
function onEvent (a: Args, deps: UpgradeDeps, w: Watch, child: ChildProcess, p: Progress, e: WatchEvent, kill: () => void): Promise<number> | number | null {
  const old = w.status
  if (e.event === 'start') {
    p.started = true
    deps.err(`successor pid ${e.pid}${e.version !== '' ? ` (${e.version})` : ''} connected${e.pid !== child.pid ? ` (started pid ${child.pid})` : ''}\n`)
  } else if (e.event === 'progress' && (Date.now() - p.lastProgress > 200 || e.bytes === e.total)) {
    p.lastProgress = Date.now()
    deps.err(`  copying region ${e.region}: ${formatBytes(e.bytes)} / ${formatBytes(e.total)} (${(100 * e.bytes / e.total).toFixed(0)}%)\n`)
  } else if (e.event === 'committing') {
    p.committing = true
  } else if (e.event === 'fenced') {
    if (e.granted) {
      kill()
      deps.err(`pagegift upgrade: ${p.cancelling ?? 'cancelled'}: killed the successor (pid ${child.pid}), once the serving generation had agreed to commit to nobody\n`)
      if (!p.started) {
        deps.err(`pagegift upgrade: rolled back: the successor never asked for the handoff. ${stillServing(old)}\n`)
        return 1
      }
    } else {
      p.committing ||= e.committing
      deps.err(`pagegift upgrade: ${p.cancelling ?? 'cancelled'}, but ${e.reason ?? 'the fence was refused'}: the successor (pid ${child.pid}) is left alone; waiting for the outcome\n`)
    }
  } else if (e.event === 'resumed') {
    if (!p.committing && child.pid !== undefined) kill()
    const when = e.afterCommit === true ? ' (the successor never said SERVING after COMMIT, so nothing it held was used)' : ''
    deps.err(`pagegift upgrade: rolled back: ${e.reason} [${e.code}]${when}${p.exited !== null ? `; the successor ${p.exited}` : ''}. ${stillServing(old)}\n`)
    return 1
  } else if (e.event === 'committed') {
    child.unref()
    return (async () => {
      const now = await queryStatus(a.socket, { retryMs: 2000 }).catch(() => null)
      const mine = now?.history.find((r) => r.generation === e.record.generation && r.toPid === e.record.toPid)
      deps.out(a.json ? JSON.stringify({ committed: e.record, successor: mine ?? null }) + '\n' : summary(e.record, mine ?? null))
      return 0
    })()
  }
  return null
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
