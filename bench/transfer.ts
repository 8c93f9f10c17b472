/**
 * `npm run bench -- transfer`: one process hands bytes to another (a real child, forked) with
 * pagegift's gift() and with Node's own ways, in the same run: child_process IPC with serialization
 * 'advanced', a net Unix socket read straight into a preallocated buffer, and Buffer.copy inside one
 * process (the memcpy bound), at every size from 64 B to 4 GiB in powers of 4.
 *
 * A time runs from the sending call (gift(), send(), write()) to the bytes being usable in the child
 * (receive() resolved, 'message' emitted, the last byte read). The child reads the clock, which is
 * CLOCK_MONOTONIC in both processes. Sources and targets are written before the clock starts: this
 * VM is slow the first time it touches fresh memory. gift() rows receive into new buffers (no
 * `into`), as a default receive does, and so include that cost. The cases of a size run interleaved,
 * round by round, baselines included, so that background load falls on all alike.
 *
 * Flags: --sizes=64,4K,64M,1G picks sizes; --paths adds every path forced; --no-stream skips the
 * stream of 1 KiB messages; --no-limits skips the C probe of the kernel's limits (bench/limits.c).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { alloc, channelPair, fdOf, release, type Channel, type GiftPath } from '../src/index.ts'
import { Memfd, mapExtents, roundUp } from '../src/pages.ts'
import { INLINE_MAX } from '../src/wire.ts'
import { formatBytes, nowMs } from './lib.ts'
import { probeLimits } from './limits.ts'
import { report, type StreamResult } from './transfer-report.ts'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
/** 64 B to 4 GiB in powers of 4. */
const DEFAULT_SIZES = Array.from({ length: 14 }, (_, i) => 64 * 4 ** i)
/** The forced-move row, for the crossover with inline gifts, runs up to this size. */
const CROSSOVER_MAX = MiB
/**
 * From this size on, untimed settling precedes each run: a full GC (mapping a big ArrayBuffer sets
 * one off), and a pause for the last run's memory to be unmapped and freed on the threadpools.
 */
const SETTLE_BYTES = 64 * MiB
const SETTLE_MS_PER_GIB = 200

export const METHOD = {
  memcpy: 'memcpy: Buffer.copy anonymous → anonymous, one process',
  net: 'net Unix socket → preallocated buffer',
  ipc: "child_process IPC, serialization 'advanced'",
  giftAlloc: 'pagegift gift(), alloc() source',
  giftBuffer: 'pagegift gift(), Buffer source',
  giftBufferWarm: 'pagegift gift(), Buffer source → pre-touched into',
  moveForced: 'pagegift move (forced), alloc() source',
} as const
/** Where the child receives: new buffers from receive(), its pre-touched target, or untouched giftable memory. */
type Into = 'none' | 'warm' | 'untouched'
const INTO_LABEL: Record<Into, string> = { none: 'new buffer', warm: 'pre-touched into', untouched: 'giftable into (untouched)' }
const giftMethod = (path: GiftPath, into: Into): string => `pagegift ${path} → ${INTO_LABEL[into]}`
/** The forced-path rows of --paths. */
const GIFT_ROWS: ReadonlyArray<readonly [GiftPath, Into]> = [
  ['move', 'untouched'], ['cma', 'none'], ['cma', 'warm'], ['splice', 'none'], ['splice', 'warm'], ['copy', 'none'], ['copy', 'warm'],
]
const COPY_CAP = 256 * MiB
const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results')

interface Options { sizes: number[], paths: boolean, stream: boolean, limits: boolean }
interface Plan { runs: number, warmup: number }
export interface Row { size: number, method: string, samples: number[], paths: string[], baseline?: boolean, skipped?: string, /** Untimed runs before `samples`. */ warmup?: number }

const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => {})
let lastSeed = 0
/** A new byte value per run, so that stale bytes from the run before cannot pass the check. */
const nextSeed = (): number => (lastSeed = lastSeed % 255 + 1)

function planFor (size: number): Plan {
  // Small sizes take microseconds, so JIT tiering shows: every case (the baselines too) first runs
  // long enough for V8 to optimise its hot JS, as it would be in a process that sends often. 300
  // warm-up runs were not enough: one 64 B gift at a time to a child, medians of successive blocks of
  // 1000 were 46, 32, 26, 27 us (the net socket's 19, 15, 14, 17 us), so the gift's code settles
  // after about 2000 calls. 200 runs then make the median a steady one.
  if (size <= 64 * KiB) return { runs: 200, warmup: 2000 }
  // Larger gifts take other code (move, cma) that the small sizes do not warm, and a receive's
  // first gift of a size makes the pages that the receive pool then reuses: a few dozen runs first.
  if (size <= MiB) return { runs: 20, warmup: 50 }
  if (size <= 64 * MiB) return { runs: 7, warmup: 5 }
  if (size <= GiB) return { runs: 5, warmup: 1 }
  // A 4 GiB gift of a Buffer into new memory takes ~25 s here (the reader's first touch): no warm-up.
  return { runs: 3, warmup: 0 }
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

/** One timed run: milliseconds, and the path a gift took. */
interface Sample { ms: number, path?: string }

/** Gifts `ab` (the source is made before the clock starts) and returns the child's time. */
async function giftOnce (peer: Peer, ab: ArrayBuffer | Buffer, size: number, seed: number, path: GiftPath | undefined, into: Into): Promise<Sample> {
  await peer.ask({ op: 'gift', size, seed, into })
  // The wait for the peer's report starts before the clock, as in ipcOnce and netOnce: between
  // gift() and the end of its turn (where a small gift is sent) runs only the gift's own code.
  const reply = peer.reply()
  const t0 = process.hrtime.bigint()
  const receipt = peer.ch.gift(ab, { path, meta: { t0: String(t0) } })
  const [r, got] = await Promise.all([receipt, reply])
  if ((path !== undefined && r.path !== path) || got.path !== r.path) throw new Error(`gift by ${path ?? 'any path'} went by ${r.path}/${String(got.path)}`)
  return { ms: Number(got.ns) / 1e6, path: r.reason === 'inline' ? 'inline' : r.path }
}

/** A plain (non-pooled) Buffer, written: the other source a user gifts. */
function bufferSource (size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafeSlow(size).fill(seed)
  if (size >= SETTLE_BYTES) gc()
  return b
}

async function ipcOnce (peer: Peer, src: Buffer): Promise<Sample> {
  const seed = nextSeed()
  src.fill(seed)
  const reply = peer.reply()
  const t0 = process.hrtime.bigint()
  peer.child.send({ t0: String(t0), seed, data: src })
  const got = await reply
  if (src.byteLength >= SETTLE_BYTES) gc()
  return { ms: Number(got.ns) / 1e6 }
}

async function netOnce (peer: Peer, socket: Socket, src: Buffer): Promise<Sample> {
  const seed = nextSeed()
  src.fill(seed)
  await peer.ask({ op: 'net', size: src.byteLength, seed })
  const reply = peer.reply()
  const t0 = process.hrtime.bigint()
  const written = new Promise<void>((resolve, reject) => socket.write(src, (err) => err == null ? resolve() : reject(err)))
  const [got] = await Promise.all([reply, written])
  return { ms: Number(BigInt(got.end as string) - t0) / 1e6 }
}

/**
 * Anonymous memory into anonymous memory, both written beforehand. At 4 GiB (where a second buffer
 * would not fit beside the rest) it copies one half of `src` onto the other, then back: the same bytes.
 */
function memcpyOnce (src: Buffer, dst: Buffer | undefined): Sample {
  const half = src.byteLength / 2
  const t0 = nowMs()
  if (dst !== undefined) {
    src.copy(dst)
  } else {
    src.copy(src, half, 0, half)
    src.copy(src, 0, half)
  }
  return { ms: nowMs() - t0 }
}

/** One way to move the bytes of a size: its timed run (absent when skipped) and how many runs it gets. */
interface Case { method: string, plan: Plan, baseline?: boolean, once?: () => Promise<Sample>, skipped?: string }

/** The forced-path rows of --paths at one size. */
function forcedCases (peer: Peer, pages: SourcePages, size: number, plan: Plan): Case[] {
  return GIFT_ROWS.map(([gift, into]): Case => {
    const c = { method: giftMethod(gift, into), plan }
    if (gift === 'copy' && size > COPY_CAP) return { ...c, skipped: `the copy path is capped at ${formatBytes(COPY_CAP)}` }
    if (size > GiB && into === 'none') return { ...c, skipped: 'above 1 GiB only pre-touched targets run' }
    return { ...c, once: async () => { const seed = nextSeed(); return await giftOnce(peer, pages.gift(seed), size, seed, gift, into) } }
  })
}

/** Sets up every case of one size (source pages, targets, the socket), measures them together, then frees it all. */
async function measureSize (peer: Peer, server: Server, path: string, size: number, opts: Options): Promise<Row[]> {
  // The anonymous source of memcpy, net and IPC; memcpy's target, except at 4 GiB (see memcpyOnce).
  const src = Buffer.allocUnsafeSlow(size).fill(1)
  const dst = size < 4 * GiB ? Buffer.allocUnsafeSlow(size).fill(2) : undefined
  await peer.ask({ op: 'target', size, seed: nextSeed() })
  const accepted = once(server, 'connection')
  await peer.ask({ op: 'net-connect', path })
  const socket = (await accepted)[0] as Socket
  socket.on('error', () => {}) // A failed write rejects its run (netOnce), which reports it.
  const pages = new SourcePages(size)
  try {
    const plan = planFor(size)
    const cases: Case[] = [
      { method: METHOD.memcpy, plan, baseline: true, once: async () => memcpyOnce(src, dst) },
      { method: METHOD.net, plan, baseline: true, once: async () => await netOnce(peer, socket, src) },
      size > GiB
        ? { method: METHOD.ipc, plan, baseline: true, skipped: 'IPC is not run above 1 GiB (its frames carry a 32-bit length)' }
        : { method: METHOD.ipc, plan: ipcPlan(size), baseline: true, once: async () => await ipcOnce(peer, src) },
      { method: METHOD.giftAlloc, plan, once: async () => { const seed = nextSeed(); return await giftOnce(peer, pages.gift(seed), size, seed, undefined, 'none') } },
      { method: METHOD.giftBuffer, plan, once: async () => { const seed = nextSeed(); return await giftOnce(peer, bufferSource(size, seed), size, seed, undefined, 'none') } },
      // What the Buffer rows above pay for the reader's fresh memory: the same gift into a warm target.
      ...(size > INLINE_MAX
        ? [{ method: METHOD.giftBufferWarm, plan, once: async () => { const seed = nextSeed(); return await giftOnce(peer, bufferSource(size, seed), size, seed, undefined, 'warm') } }]
        : []),
      ...(size >= 4 * KiB && size <= CROSSOVER_MAX
        ? [{ method: METHOD.moveForced, plan, once: async () => { const seed = nextSeed(); return await giftOnce(peer, pages.gift(seed), size, seed, 'move', 'none') } }]
        : []),
      ...(opts.paths ? forcedCases(peer, pages, size, plan) : []),
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
 * Runs every case `warmup + runs` times and keeps the runs after the warm-up, in rounds: one run of
 * each case per round, each round starting one case further on. Background load (other processes
 * share these CPUs) and whatever one case leaves behind (caches, page cache, GC) then fall on all
 * cases alike, the baselines included, which keeps the ratios meaningful.
 */
async function measureCases (size: number, cases: Case[]): Promise<Row[]> {
  const samples = cases.map((): Sample[] => [])
  const turns = (i: number): number => cases[i].once === undefined ? 0 : cases[i].plan.warmup + cases[i].plan.runs
  const rounds = Math.max(...cases.map((_, i) => turns(i)))
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < cases.length; k++) {
      const i = (round + k) % cases.length
      const c = cases[i]
      if (c.once === undefined || round >= turns(i)) continue
      const s = await c.once()
      if (round >= c.plan.warmup) samples[i].push(s)
      if (size >= SETTLE_BYTES) await new Promise((resolve) => setTimeout(resolve, SETTLE_MS_PER_GIB * size / GiB))
    }
  }
  return cases.map((c, i) => ({
    size, method: c.method, baseline: c.baseline, skipped: c.skipped, warmup: c.once === undefined ? 0 : c.plan.warmup,
    samples: samples[i].map((s) => s.ms),
    paths: [...new Set(samples[i].map((s) => s.path).filter((p) => p !== undefined))],
  }))
}

/** Messages per second for `n` 1 KiB messages with at most `window` in flight: inline gifts, and the net socket. */
async function measureStream (peer: Peer, server: Server, path: string): Promise<StreamResult[]> {
  const size = KiB
  const n = 20_000
  const window = 64
  await peer.ask({ op: 'target', size: 64 * KiB, seed: nextSeed() })
  const accepted = once(server, 'connection')
  await peer.ask({ op: 'net-connect', path })
  const socket = (await accepted)[0] as Socket
  socket.on('error', () => {})
  const out: StreamResult[] = [{ method: 'pagegift gift() stream, 1 KiB Buffers', rates: [] }, { method: 'net Unix socket stream, 1 KiB writes', rates: [] }]
  try {
    for (let round = 0; round < 6; round++) {
      for (const [i, op] of [[0, 'stream-gift'], [1, 'stream-net']] as const) {
        const seed = nextSeed()
        const sources = Array.from({ length: n }, () => Buffer.allocUnsafeSlow(size).fill(seed))
        await peer.ask({ op, n, size, seed })
        const t0 = process.hrtime.bigint()
        const sent = windowed(sources, window, (b) => op === 'stream-gift'
          ? peer.ch.gift(b).then(() => {})
          : new Promise<void>((resolve, reject) => socket.write(b, (err) => err == null ? resolve() : reject(err))))
        const [got] = await Promise.all([peer.reply(), sent])
        if (round > 0) out[i].rates.push(n / (Number(BigInt(got.end as string) - t0) / 1e9))
        if (i === 0 && got.reason !== 'inline') throw new Error(`a stream gift went by ${String(got.path)}, not inline`)
      }
    }
  } finally {
    socket.destroy()
    await peer.ask({ op: 'drop' })
  }
  return out
}

/** Sends every item, keeping at most `window` sends unsettled. */
async function windowed<T> (items: T[], window: number, send: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => { while (next < items.length) await send(items[next++]) }
  await Promise.all(Array.from({ length: window }, lane))
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
  mkdirSync(resultsDir, { recursive: true })
  let stream: StreamResult[] = []
  const started = nowMs()
  const loadBefore = loadavg()[0]
  try {
    for (const size of opts.sizes) {
      process.stdout.write(`${formatBytes(size)}...\n`)
      try {
        rows.push(...await measureSize(peer, server, path, size, opts))
        // What is measured so far survives a run that dies later (the kernel's OOM killer at 4 GiB).
        writeFileSync(join(resultsDir, 'transfer-partial.json'), JSON.stringify({ date: new Date().toISOString(), rows }) + '\n')
      } catch (err) {
        // Report what was measured: a failure at 4 GiB should not lose the sizes before it.
        process.stdout.write(`*** ${formatBytes(size)} failed, the run stops here: ${(err as Error).stack ?? String(err)}\n`)
        rows.push({ size, method: 'error', samples: [], paths: [], skipped: `failed: ${(err as Error).message}` })
        break
      }
    }
    if (opts.stream && !rows.some((r) => r.method === 'error')) {
      process.stdout.write('stream of 1 KiB messages...\n')
      stream = await measureStream(peer, server, path)
    }
  } finally {
    await peer.stop()
    server.close()
    rmSync(dir, { recursive: true, force: true })
  }
  const limits = opts.limits ? probeLimits() : { skipped: 'not run (--no-limits)' }
  report({ rows, stream, limits, options: opts, elapsedMs: nowMs() - started, load: [loadBefore, loadavg()[0]] })
}

function parseFlags (flags: string[]): Options {
  const list = flags.find((f) => f.startsWith('--sizes='))?.slice('--sizes='.length)
  const sizes = list !== undefined ? list.split(',').map(parseSize) : DEFAULT_SIZES
  return { sizes, paths: flags.includes('--paths'), stream: !flags.includes('--no-stream'), limits: !flags.includes('--no-limits') }
}

function parseSize (s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim())
  if (m === null) throw new RangeError(`--sizes: cannot read '${s}' (use e.g. 64, 4K, 64M, 1G)`)
  return Number(m[1]) * ({ '': 1, K: KiB, M: MiB, G: GiB } as Record<string, number>)[m[2].toUpperCase()]
}
