/**
 * The handoff bench's client side and its picture: load clients in a request/response loop that
 * see each handoff as the gap between their last answer from the old generation and their first
 * from the new one, and an SVG timeline of the pause by phase.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { compileC, type Stats } from './lib.ts'

/** A client's crossings of handoffs, however it learns of them; `crossing()` waits for one. */
export class Crossings {
  /** New generation -> the gap this client saw across the handoff to it, in ms. */
  readonly crossings = new Map<number, number>()
  /** New generation -> CLOCK_MONOTONIC ns of this client's last answer from the old one and first from the new one. */
  readonly edges = new Map<number, { last: bigint, first: bigint }>()
  /** The longest wait for one answer since the last reset (start-up of the successor included). */
  maxWaitMs = 0
  failed: string | null = null
  protected wake: (() => void) | null = null
  constructor (readonly slot: number) {}

  /** Records this client's crossing to generation `gen`. */
  crossed (gen: number, last: bigint, first: bigint): void {
    this.crossings.set(gen, Number(first - last) / 1e6)
    this.edges.set(gen, { last, first })
    this.wake?.()
  }

  fail (why: string): void { this.failed ??= why; this.wake?.() }

  /** Resolves with this client's gap across the handoff to `generation`, once it has seen it served. */
  async crossing (generation: number, ms: number): Promise<number> {
    const until = Date.now() + ms
    for (;;) {
      const gap = this.crossings.get(generation)
      if (gap !== undefined) return gap
      if (this.failed !== null) throw new Error(`load client: ${this.failed}`)
      if (Date.now() > until) throw new Error(`load client ${this.slot}: no answer from generation ${generation} within ${ms} ms`)
      await new Promise<void>((resolve) => { this.wake = resolve; setTimeout(resolve, 20) })
    }
  }

  close (): void {}
}

/**
 * One connection sending "INC <slot>" one at a time; every answer names the generation that served
 * it ("<generation> <value>"). When the generation changes, the time since the last answer of the
 * old one is this client's gap for that handoff (issue 11: "its last answer before, its first
 * answer after").
 */
export class LoadClient extends Crossings {
  #socket: net.Socket
  #buf = ''
  #gen = 0
  #lastAt = 0n
  #sentAt = 0n
  constructor (port: number, slot: number, readonly onCrossing?: (gen: number, edge: { last: bigint, first: bigint }) => void, onFailed?: (why: string) => void) {
    super(slot)
    this.#socket = net.connect(port, '127.0.0.1')
    this.#socket.setNoDelay(true)
    this.#socket.on('error', (err) => { this.fail(err.message); onFailed?.(err.message) })
    this.#socket.on('close', () => { this.fail('closed'); onFailed?.('closed') })
    this.#socket.on('data', (d) => { this.#onData(d) })
    this.#send()
  }

  #onData (d: Buffer): void {
    this.#buf += d.toString('latin1')
    let nl: number
    while ((nl = this.#buf.indexOf('\n')) >= 0) {
      const gen = Number(this.#buf.slice(0, this.#buf.indexOf(' ')))
      this.#buf = this.#buf.slice(nl + 1)
      const now = process.hrtime.bigint()
      const wait = Number(now - this.#sentAt) / 1e6
      if (wait > this.maxWaitMs) this.maxWaitMs = wait
      if (this.#gen !== 0 && gen !== this.#gen) {
        this.crossed(gen, this.#lastAt, now)
        this.onCrossing?.(gen, { last: this.#lastAt, first: now })
      }
      this.#gen = gen
      this.#lastAt = now
      this.#send()
    }
  }

  #send (): void { this.#sentAt = process.hrtime.bigint(); this.#socket.write(`INC ${this.slot}\n`) }

  override close (): void { this.#socket.removeAllListeners('close'); this.#socket.destroy() }
}

/**
 * `n` load clients in a child process (bench/handoff-clients.ts), seen here as one Crossings each:
 * a service's clients are other processes, so the bench's own bookkeeping stays out of their gaps.
 * Each client's maxWaitMs there covers the time since its previous crossing. With `bin` the clients
 * are bench/handoff-clients.c, built: clients whose own cost is next to nothing.
 */
export function remoteClients (port: number, n: number, bin?: string): Crossings[] {
  const here = dirname(fileURLToPath(import.meta.url))
  // `bin`: bench/handoff-clients.c built, which prints the same lines.
  const [cmd, ...args] = bin !== undefined ? [bin] : [process.execPath, '--import', 'tsx', join(here, 'handoff-clients.ts')]
  const child = spawn(cmd, [...args, String(port), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const clients = Array.from({ length: n }, (_, slot) => new Crossings(slot))
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    let m: { slot?: number, gen?: number, last?: string, first?: string, maxWaitMs?: number, failed?: string }
    try { m = JSON.parse(line) } catch { return }
    const c = clients[m.slot ?? -1]
    if (c === undefined) return
    if (m.failed !== undefined) return c.fail(m.failed)
    c.maxWaitMs = Math.max(c.maxWaitMs, m.maxWaitMs ?? 0)
    c.crossed(m.gen as number, BigInt(m.last as string), BigInt(m.first as string))
  })
  child.once('exit', (code, signal) => { for (const c of clients) c.fail(`the clients' process exited (${signal ?? code})`) })
  // Closing its stdin ends it; the kill is for a child that does not listen.
  clients[0].close = () => { child.stdin?.end(); setTimeout(() => child.kill('SIGKILL'), 2000).unref() }
  return clients
}

/** A child's reports, one JSON object per stdout line, and `wait(event)` for the first of a kind. */
export interface Reports { events: Record<string, unknown>[], wait: (event: string, ms?: number) => Promise<Record<string, unknown>> }

/** Collects `child`'s reports; `name` (e.g. "service pid 42") is what its errors call it. */
export function reports (child: ChildProcess, name: string): Reports {
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
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited before '${event}'`)
      if (Date.now() > until) throw new Error(`${name}: no '${event}' within ${ms} ms`)
      await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, 100) })
    }
  }
  return { events, wait }
}

/** Builds bench/handoff-clients.c into `dir` for `--c-clients`; throws if it cannot be built. */
export function cClients (dir: string): string {
  const built = compileC('handoff-clients', dir)
  if ('skipped' in built) throw new Error(`--c-clients: ${built.skipped}`)
  return built.bin
}

export const PHASES = ['quiesce', 'state', 'adopt', 'ready', 'commit', 'serving'] as const
const LABELS: Record<typeof PHASES[number], string> = { quiesce: 'quiesce', state: 'STATE sent', adopt: 'fds adopted', ready: 'READY', commit: 'COMMIT', serving: 'SERVING' }
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b']

/** One row of the timeline: a size, its median phases, and its median client-seen gap. */
export interface TimelineRow { label: string, phases: Partial<Record<typeof PHASES[number], Stats>>, clientGap: Stats }

/**
 * A horizontal bar per row: the median of each phase laid end to end from "stopped serving", and
 * a mark at the median gap the clients saw (which adds their own request and the gate opening).
 */
export function timelineSvg (rows: TimelineRow[], title: string): string {
  const width = 900
  const left = 90
  const right = 30
  const barH = 26
  const top = 50
  const height = top + rows.length * (barH + 18) + 70
  const span = Math.max(...rows.map((r) => Math.max(r.clientGap.median, PHASES.reduce((n, p) => n + (r.phases[p]?.median ?? 0), 0)))) * 1.05
  const px = (ms: number): number => left + ms / span * (width - left - right)
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${title}</text>`,
  ]
  const step = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20].find((s) => span / s <= 10) ?? 50
  for (let t = 0; t <= span; t += step) out.push(`<line x1="${px(t).toFixed(1)}" x2="${px(t).toFixed(1)}" y1="${top - 8}" y2="${height - 60}" stroke="#ddd"/>`, `<text x="${px(t).toFixed(1)}" y="${height - 46}" text-anchor="middle">${+t.toFixed(2)} ms</text>`)
  rows.forEach((r, i) => {
    const y = top + i * (barH + 18)
    out.push(`<text x="${left - 8}" y="${y + barH / 2}" text-anchor="end" dominant-baseline="middle">${r.label}</text>`)
    let at = 0
    PHASES.forEach((p, k) => {
      const ms = r.phases[p]?.median ?? 0
      out.push(`<rect x="${px(at).toFixed(1)}" y="${y}" width="${Math.max(0, px(at + ms) - px(at)).toFixed(1)}" height="${barH}" fill="${COLOURS[k]}"><title>${LABELS[p]} ${ms.toFixed(3)} ms</title></rect>`)
      at += ms
    })
    const g = px(r.clientGap.median).toFixed(1)
    out.push(`<line x1="${g}" x2="${g}" y1="${y - 4}" y2="${y + barH + 4}" stroke="black" stroke-width="2" stroke-dasharray="4 2"/>`)
  })
  PHASES.forEach((p, k) => {
    const x = left + k * 125
    out.push(`<rect x="${x}" y="${height - 28}" width="14" height="14" fill="${COLOURS[k]}"/>`, `<text x="${x + 18}" y="${height - 21}" dominant-baseline="middle">${LABELS[p]}</text>`)
  })
  out.push(`<text x="${width - right}" y="${top - 14}" text-anchor="end">bars: median phase from "stopped serving"; dashed: median client-seen gap</text>`, '</svg>')
  return out.join('\n') + '\n'
}
