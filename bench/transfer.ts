/**
 * `npm run bench -- transfer`: one process hands bytes to another (a real child, forked), by each
 * pagegift path forced, and by Node's own ways in the same run: child_process IPC with
 * serialization 'advanced', a net Unix socket read straight into a preallocated buffer, and
 * Buffer.copy inside one process (the memcpy bound).
 *
 * A time runs from the sending call (gift(), send(), write()) to the bytes being usable in the child
 * (receive() resolved, 'message' emitted, the last byte read). The child reads the clock, which is
 * CLOCK_MONOTONIC in both processes. Sources and `into` targets are written before the clock starts:
 * this VM is slow the first time it touches fresh memory, so untouched memory would measure the VM.
 * From 64 MiB on, the cases of a size run interleaved, round by round, so that background load falls
 * on all alike.
 * Rows "→ new buffer" let receive() allocate, as a default receive does, and so include that cost;
 * "→ giftable into (untouched)" names never-written giftable memory, which moved pages replace.
 *
 * Flags: --4g adds 4 GiB; --full runs the copy path at every size and every path at 4 GiB (by
 * default the copy path stops at 256 MiB, and 4 GiB runs only move, and cma and splice into
 * pre-touched targets; IPC never runs above 1 GiB); --sizes=4K,64M,1G picks sizes.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { cpus, loadavg, release as kernel, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { alloc, channelPair, fdOf, release, type Channel, type GiftPath } from '../src/index.ts'
import { Memfd, mapExtents, roundUp } from '../src/pages.ts'
import { formatBytes, formatMs, nowMs, printTable, stats, writeResults } from './lib.ts'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const DEFAULT_SIZES = [4 * KiB, 64 * KiB, MiB, 64 * MiB, 256 * MiB, GiB]
const COPY_CAP = 256 * MiB
/**
 * From this size on, untimed settling precedes each run: a full GC (mapping a big ArrayBuffer sets
 * one off), and a pause for the last run's memory to be unmapped and freed on the threadpools.
 */
const SETTLE_BYTES = 64 * MiB
const SETTLE_MS_PER_GIB = 200

const METHOD = {
  memcpy: 'Buffer.copy, one process (memcpy bound)',
  net: 'net Unix socket → preallocated buffer',
  ipc: "child_process IPC, serialization 'advanced'",
} as const
/** Where the child receives: new buffers from receive(), its pre-touched target, or untouched giftable memory. */
type Into = 'none' | 'warm' | 'untouched'
const INTO_LABEL: Record<Into, string> = { none: 'new buffer', warm: 'pre-touched into', untouched: 'giftable into (untouched)' }
const giftMethod = (path: GiftPath, into: Into): string => `pagegift ${path} → ${INTO_LABEL[into]}`
const GIFT_ROWS: ReadonlyArray<readonly [GiftPath, Into]> = [
  ['move', 'none'], ['move', 'untouched'],
  ['cma', 'none'], ['cma', 'warm'], ['splice', 'none'], ['splice', 'warm'], ['copy', 'none'], ['copy', 'warm'],
]

interface Options { sizes: number[], full: boolean }
interface Plan { runs: number, warmup: number }
interface Row { size: number, method: string, samples: number[], skipped?: string }

const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => {})
let lastSeed = 0
/** A new byte value per run, so that stale bytes from the run before cannot pass the check. */
const nextSeed = (): number => (lastSeed = lastSeed % 255 + 1)

function planFor (size: number): Plan {
  if (size <= 64 * KiB) return { runs: 50, warmup: 10 }
  if (size <= MiB) return { runs: 20, warmup: 5 }
  if (size <= 64 * MiB) return { runs: 7, warmup: 1 }
  if (size <= GiB) return { runs: 5, warmup: 1 }
  return { runs: 3, warmup: 1 }
}
/** IPC takes seconds a run from 1 GiB on: fewer runs there. */
const ipcPlan = (size: number): Plan => size >= GiB ? { runs: 3, warmup: 1 } : planFor(size)

/** The child on the other end: a channel for gifts and reports, Node's IPC, and a net socket on demand. */
class Peer {
  readonly ch: Channel
  readonly child: ChildProcess
  readonly #exited: Promise<unknown>

  constructor () {
    const [mine, theirs] = channelPair()
    const script = join(dirname(fileURLToPath(import.meta.url)), 'transfer-peer.ts')
    this.child = fork(script, [], {
      execArgv: ['--expose-gc', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', theirs.fd, 'ipc'],
      serialization: 'advanced',
    })
    theirs.close()
    this.ch = mine
    this.#exited = once(this.child, 'exit')
  }

  async ask (msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.ch.send(msg)
    return await this.reply()
  }

  async reply (): Promise<Record<string, unknown>> {
    const out = (await this.ch.recv({ timeoutMs: 300_000 })).msg as Record<string, unknown>
    if (typeof out.error === 'string') throw new Error(`transfer peer: ${out.error}`)
    if (out.ok === false) throw new Error('transfer peer: the bytes that arrived are not the bytes sent')
    return out
  }

  async stop (): Promise<void> {
    await this.ch.send({ op: 'exit' }).catch(() => this.child.kill())
    await this.#exited
    this.ch.close()
  }
}

/**
 * The source of every run, of every case: one memfd, kept mapped and written here as `view` (what
 * the peers that do not take memory away send), and mapped afresh and written before each gift (a
 * gift takes its mapping away). Its pages stay allocated from run to run, so no run pays this VM's
 * first touch of fresh memory (1–3 s per GiB), and every case reads the same warm pages.
 */
class SourcePages {
  readonly view: Buffer
  readonly #kept: ArrayBuffer
  readonly #memfd: Memfd
  readonly #size: number

  constructor (size: number) {
    this.#kept = alloc(size)
    this.view = Buffer.from(this.#kept).fill(1)
    this.#memfd = new Memfd(fdOf(this.#kept))
    this.#size = size
  }

  /** Pages for one gift, written with `seed`; a big mapping can set off V8's external-memory GC, so that settles first. */
  gift (seed: number): ArrayBuffer {
    const ab = mapExtents([{ memfd: this.#memfd, offset: 0, length: roundUp(this.#size) }], this.#size)
    new Uint8Array(ab).fill(seed)
    if (this.#size >= SETTLE_BYTES) gc()
    return ab
  }

  close (): void {
    release(this.#kept)
    this.#memfd.unref()
  }
}

async function giftOnce (peer: Peer, pages: SourcePages, size: number, path: GiftPath, into: Into): Promise<number> {
  const seed = nextSeed()
  const ab = pages.gift(seed)
  await peer.ask({ op: 'gift', size, seed, into })
  const t0 = process.hrtime.bigint()
  const receipt = peer.ch.gift(ab, { path, meta: { t0: String(t0) } })
  const [r, got] = await Promise.all([receipt, peer.reply()])
  if (r.path !== path || got.path !== path) throw new Error(`gift by ${path} went by ${r.path}/${String(got.path)}`)
  return Number(got.ns) / 1e6
}

async function ipcOnce (peer: Peer, src: Buffer): Promise<number> {
  const seed = nextSeed()
  src.fill(seed)
  const reply = peer.reply()
  const t0 = process.hrtime.bigint()
  peer.child.send({ t0: String(t0), seed, data: src })
  const got = await reply
  if (src.byteLength >= SETTLE_BYTES) gc()
  return Number(got.ns) / 1e6
}

async function netOnce (peer: Peer, socket: Socket, src: Buffer): Promise<number> {
  const seed = nextSeed()
  src.fill(seed)
  await peer.ask({ op: 'net', size: src.byteLength, seed })
  const t0 = process.hrtime.bigint()
  const written = new Promise<void>((resolve, reject) => socket.write(src, (err) => err == null ? resolve() : reject(err)))
  const [got] = await Promise.all([peer.reply(), written])
  return Number(BigInt(got.end as string) - t0) / 1e6
}

function memcpyOnce (src: Buffer, dst: Buffer): number {
  const t0 = nowMs()
  src.copy(dst)
  return nowMs() - t0
}

/** Why a pagegift row is not run at this size by default, or undefined to run it. */
function giftSkip (size: number, path: GiftPath, into: Into, opts: Options): string | undefined {
  if (opts.full) return undefined
  if (path === 'copy' && size > COPY_CAP) return `the copy path is capped at ${formatBytes(COPY_CAP)} to keep the run short (--full runs it)`
  if (size > GiB && path !== 'move' && into === 'none') return 'above 1 GiB only move and pre-touched targets run (--full runs all)'
  return undefined
}

/** One way to move the bytes of a size: its timed run (absent when skipped) and how many runs it gets. */
interface Case { method: string, plan: Plan, once?: () => Promise<number>, skipped?: string }

/** Sets up every case of one size (source pages, targets, the socket), measures them together, then frees it all. */
async function measureSize (peer: Peer, server: Server, path: string, size: number, opts: Options): Promise<Row[]> {
  // Memory in use: the source pages and `dst` here, the target in the child (at 4 GiB, 12 GiB in all).
  const dst = Buffer.allocUnsafeSlow(size).fill(2)
  await peer.ask({ op: 'target', size, seed: nextSeed() })
  const accepted = once(server, 'connection')
  await peer.ask({ op: 'net-connect', path })
  const socket = (await accepted)[0] as Socket
  socket.on('error', () => {}) // A failed write rejects its run (netOnce), which reports it.
  const pages = new SourcePages(size)
  try {
    const plan = planFor(size)
    const cases: Case[] = [
      { method: METHOD.memcpy, plan, once: async () => memcpyOnce(pages.view, dst) },
      { method: METHOD.net, plan, once: async () => await netOnce(peer, socket, pages.view) },
      size > GiB
        ? { method: METHOD.ipc, plan, skipped: 'IPC is not run above 1 GiB (seconds per GiB, and each side holds a serialized copy)' }
        : { method: METHOD.ipc, plan: ipcPlan(size), once: async () => await ipcOnce(peer, pages.view) },
      ...GIFT_ROWS.map(([gift, into]): Case => {
        const c = { method: giftMethod(gift, into), plan, skipped: giftSkip(size, gift, into, opts) }
        return c.skipped !== undefined ? c : { ...c, once: async () => await giftOnce(peer, pages, size, gift, into) }
      }),
    ]
    return await measureCases(size, cases)
  } finally {
    socket.destroy()
    pages.close()
    await peer.ask({ op: 'drop' })
    gc()
  }
}

/**
 * Runs every case `warmup + runs` times and keeps the runs after the warm-up. Big sizes go in rounds,
 * one run of each case per round, each round starting one case further on: the machine's background
 * load (other processes share these CPUs) then falls on all cases alike, which keeps the ratios
 * meaningful. Small sizes run case by case, each case straight after its warm-up, as caches matter there.
 */
async function measureCases (size: number, cases: Case[]): Promise<Row[]> {
  const samples = cases.map((): number[] => [])
  const turns = (i: number): number => cases[i].once === undefined ? 0 : cases[i].plan.warmup + cases[i].plan.runs
  const rounds = Math.max(...cases.map((_, i) => turns(i)))
  const schedule: Array<[number, number]> = size >= SETTLE_BYTES
    ? Array.from({ length: rounds }, (_, round) => cases.map((_, k): [number, number] => [(round + k) % cases.length, round])).flat()
    : cases.flatMap((_, i) => Array.from({ length: rounds }, (_, round): [number, number] => [i, round]))
  for (const [i, round] of schedule) {
    const c = cases[i]
    if (c.once === undefined || round >= turns(i)) continue
    const ms = await c.once()
    if (round >= c.plan.warmup) samples[i].push(ms)
    if (size >= SETTLE_BYTES) await new Promise((resolve) => setTimeout(resolve, SETTLE_MS_PER_GIB * size / GiB))
  }
  return cases.map((c, i) => ({ size, method: c.method, samples: samples[i], skipped: c.skipped }))
}

export async function run (flags: string[]): Promise<void> {
  const opts = parseFlags(flags)
  const dir = mkdtempSync(join(tmpdir(), 'pagegift-bench-transfer-'))
  const path = join(dir, 'net.sock')
  const server = createServer()
  server.listen(path)
  await once(server, 'listening')
  const peer = new Peer()
  const rows: Row[] = []
  const started = nowMs()
  const loadBefore = loadavg()[0]
  try {
    for (const size of opts.sizes) {
      process.stdout.write(`${formatBytes(size)}...\n`)
      rows.push(...await measureSize(peer, server, path, size, opts))
    }
  } finally {
    await peer.stop()
    server.close()
    rmSync(dir, { recursive: true, force: true })
  }
  report(rows, opts, { elapsedMs: nowMs() - started, load: [loadBefore, loadavg()[0]] })
}

function parseFlags (flags: string[]): Options {
  const full = flags.includes('--full')
  const list = flags.find((f) => f.startsWith('--sizes='))?.slice('--sizes='.length)
  const sizes = list !== undefined ? list.split(',').map(parseSize) : [...DEFAULT_SIZES, ...(flags.includes('--4g') ? [4 * GiB] : [])]
  return { sizes, full }
}

function parseSize (s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim())
  if (m === null) throw new RangeError(`--sizes: cannot read '${s}' (use e.g. 4K, 64M, 1G)`)
  return Number(m[1]) * ({ '': 1, K: KiB, M: MiB, G: GiB } as Record<string, number>)[m[2].toUpperCase()]
}

const gbps = (size: number, ms: number): string => (size / 1e6 / ms).toFixed(size / 1e6 / ms < 10 ? 3 : 1)

interface RunInfo { elapsedMs: number, load: number[] }

function report (rows: Row[], opts: Options, info: RunInfo): void {
  process.stdout.write(`\ntransfer to a child process; time from the send call to the bytes usable in the child; GB/s = 1e9 bytes/s\n`)
  process.stdout.write(`${cpus().length} CPUs, Linux ${kernel()}, Node ${process.version}; 1-min load average ${info.load.map((l) => l.toFixed(1)).join(' at start, ')} at end\n\n`)
  printTable(rows.map((r) => {
    if (r.samples.length === 0) return { size: formatBytes(r.size), method: r.method, runs: 0, median: 'not run*', 'min–max': '', 'GB/s': '', 'GB/s min–max': '' }
    const s = stats(r.samples)
    return {
      size: formatBytes(r.size),
      method: r.method,
      runs: s.runs,
      median: formatMs(s.median),
      'min–max': `${formatMs(s.min)} – ${formatMs(s.max)}`,
      'GB/s': gbps(r.size, s.median),
      'GB/s min–max': `${gbps(r.size, s.max)} – ${gbps(r.size, s.min)}`,
    }
  }))
  const skipped = [...new Set(rows.map((r) => r.skipped).filter((x) => x !== undefined))]
  if (skipped.length > 0) process.stdout.write(`* ${skipped.join('; ')}\n`)
  const ratios = targetRatios(rows)
  process.stdout.write('\ntargets (ratios of medians in this run):\n')
  const verdict = (r: Ratio): string => r.pass !== undefined ? (r.pass ? 'PASS' : 'FAIL') : r.value !== undefined ? 'info' : 'n/a '
  for (const r of ratios) process.stdout.write(`  ${verdict(r)}  ${r.text}\n`)
  process.stdout.write(`\n(whole run: ${formatMs(info.elapsedMs)})\n`)
  writeResults('transfer', {
    host: { cpus: cpus().length, kernel: kernel(), loadAverage: info.load },
    options: { ...opts, copyCap: opts.full ? null : COPY_CAP },
    elapsedMs: info.elapsedMs,
    rows: rows.map((r) => ({ ...r, stats: r.samples.length > 0 ? stats(r.samples) : undefined })),
    ratios,
  })
}

interface Ratio { name: string, value?: number, pass?: boolean, text: string }

function targetRatios (rows: Row[]): Ratio[] {
  const median = (method: string, size: number): number | undefined => {
    const r = rows.find((x) => x.method === method && x.size === size && x.samples.length > 0)
    return r === undefined ? undefined : stats(r.samples).median
  }
  const move1g = median(giftMethod('move', 'none'), GiB)
  const move64m = median(giftMethod('move', 'none'), 64 * MiB)
  const ipc1g = median(METHOD.ipc, GiB)
  const memcpy1g = median(METHOD.memcpy, GiB)
  const cma1g = median(giftMethod('cma', 'warm'), GiB)
  const cmaNew1g = median(giftMethod('cma', 'none'), GiB)
  const out: Ratio[] = []
  const add = (name: string, value: number | undefined, pass: (v: number) => boolean, text: (v: number) => string): void => {
    out.push(value === undefined ? { name, text: `${name}: not measured in this run` } : { name, value, pass: pass(value), text: text(value) })
  }
  add('move 1 GiB vs IPC', ipc1g !== undefined && move1g !== undefined ? ipc1g / move1g : undefined, (v) => v >= 1000,
    (v) => `move at 1 GiB is ${v.toFixed(0)}x faster than advanced IPC (${formatMs(move1g as number)} vs ${formatMs(ipc1g as number)}; target >= 1000x)`)
  add('move 1 GiB median', move1g, (v) => v < 1, (v) => `move at 1 GiB median ${formatMs(v)} (target < 1 ms)`)
  add('move growth 64 MiB -> 1 GiB', move1g !== undefined && move64m !== undefined ? move1g / move64m : undefined, (v) => v < 2,
    (v) => `move time grows ${v.toFixed(2)}x from 64 MiB to 1 GiB (${formatMs(move64m as number)} -> ${formatMs(move1g as number)}; target < 2x)`)
  add('cma 1 GiB vs Buffer.copy', cma1g !== undefined && memcpy1g !== undefined ? memcpy1g / cma1g : undefined, (v) => v >= 0.5,
    (v) => `cma at 1 GiB into a pre-touched target runs at ${v.toFixed(2)}x the Buffer.copy bandwidth (${gbps(GiB, cma1g as number)} vs ${gbps(GiB, memcpy1g as number)} GB/s; target >= 0.5x)`)
  const moveInto1g = median(giftMethod('move', 'untouched'), GiB)
  if (moveInto1g !== undefined) {
    out.push({ name: 'move 1 GiB into a giftable target', value: moveInto1g, text: `for reference: move at 1 GiB into a giftable target takes ${formatMs(moveInto1g)} (the receiver makes no new ArrayBuffer)` })
  }
  if (cmaNew1g !== undefined && memcpy1g !== undefined) {
    out.push({ name: 'cma 1 GiB new buffer vs Buffer.copy', value: memcpy1g / cmaNew1g, text: `for reference: cma at 1 GiB into a new buffer runs at ${(memcpy1g / cmaNew1g).toFixed(2)}x the Buffer.copy bandwidth (no target)` })
  }
  return out
}
