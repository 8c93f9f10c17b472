/**
 * The transfer bench's report: the table, the run's validity checks, the targets as ratios (each
 * with the medians it came from), the crossover of inline gifts with moves, the stream rates, the
 * kernel's limits beside pagegift's figures, the JSON and an SVG chart.
 */
import { writeFileSync } from 'node:fs'
import { cpus, release as kernel } from 'node:os'
import { INLINE_CHUNKED_MAX, INLINE_MAX, INLINE_MAX_PAGES } from '../src/wire.ts'
import { formatBytes, formatMs, printTable, stats, writeResults, type Stats } from './lib.ts'
import type { Limits } from './limits.ts'
import { lineChart } from './svg.ts'
import { METHOD, type Row } from './transfer.ts'

export interface StreamResult { method: string, rates: number[] }
interface Run { rows: Row[], stream: StreamResult[], limits: Limits, options: unknown, elapsedMs: number, load: number[] }
interface Ratio { name: string, value?: number, target?: string, pass?: boolean, from?: Record<string, number>, text: string }

/** A baseline whose middle half spans more than this (q3/q1) drifted within the run. */
const MAX_BASELINE_SPREAD = 2
const ONE_COPY = new Set(['cma', 'splice'])
/** A ratio with two significant digits however small: 0.0016x, not 0.00x. */
const ratioText = (v: number): string => `${v < 0.01 ? v.toPrecision(2) : v.toFixed(2)}x`
const gbps = (size: number, ms: number): string => (size / 1e6 / ms).toFixed(size / 1e6 / ms < 10 ? 3 : 1)

/** Spread of the middle half of the samples: the upper quartile over the lower. */
function spread (samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b)
  const q = (f: number): number => s[Math.min(s.length - 1, Math.floor(f * (s.length - 1) + 0.5))]
  return q(0.75) / q(0.25)
}

function medianOf (rows: Row[], method: string, size: number): number | undefined {
  const r = rows.find((x) => x.method === method && x.size === size && x.samples.length > 0)
  return r === undefined ? undefined : stats(r.samples).median
}

/** Why the run cannot be trusted: a baseline that drifted, or a one-copy path faster than memcpy. */
function validity (rows: Row[]): string[] {
  const out: string[] = []
  for (const r of rows.filter((x) => x.baseline === true && x.samples.length >= 3)) {
    const sp = spread(r.samples)
    if (sp > MAX_BASELINE_SPREAD) out.push(`${r.method} at ${formatBytes(r.size)}: spread ${sp.toFixed(2)}x (q3/q1) is over ${MAX_BASELINE_SPREAD}x`)
  }
  for (const r of rows.filter((x) => x.samples.length > 0 && x.paths.length > 0 && x.paths.every((p) => ONE_COPY.has(p)))) {
    const memcpy = medianOf(rows, METHOD.memcpy, r.size)
    const m = stats(r.samples).median
    if (memcpy !== undefined && m < memcpy) out.push(`${r.method} (${r.paths.join('/')}, one copy) at ${formatBytes(r.size)} beats memcpy: ${formatMs(m)} < ${formatMs(memcpy)}`)
  }
  return out
}

/** Each gift row against the net socket (target ≤ 1.0x) and IPC (target ≤ 0.5x), per size. */
function targetRatios (rows: Row[]): Ratio[] {
  const out: Ratio[] = []
  for (const size of [...new Set(rows.map((r) => r.size))]) {
    for (const method of [METHOD.giftAlloc, METHOD.giftBuffer]) {
      const gift = medianOf(rows, method, size)
      if (gift === undefined) continue
      for (const [base, limit] of [[METHOD.net, 1], [METHOD.ipc, 0.5]] as const) {
        const b = medianOf(rows, base, size)
        if (b === undefined) continue
        const value = gift / b
        const name = `${method} vs ${base === METHOD.net ? 'net' : 'IPC'} at ${formatBytes(size)}`
        out.push({ name, value, target: `<= ${limit}x`, pass: value <= limit, from: { gift, [base === METHOD.net ? 'net' : 'ipc']: b }, text: `${name}: ${ratioText(value)} (${formatMs(gift)} / ${formatMs(b)}; target <= ${limit}x)` })
      }
    }
  }
  return out
}

/** The earlier targets of the move and cma paths, kept so that a regression shows. */
function pathRatios (rows: Row[]): Ratio[] {
  const GiB = 2 ** 30
  const move1g = medianOf(rows, METHOD.giftAlloc, GiB)
  const move64m = medianOf(rows, METHOD.giftAlloc, 64 * 2 ** 20)
  const ipc1g = medianOf(rows, METHOD.ipc, GiB)
  const memcpy1g = medianOf(rows, METHOD.memcpy, GiB)
  const cma1g = medianOf(rows, METHOD.giftBufferWarm, GiB)
  const out: Ratio[] = []
  const add = (name: string, value: number | undefined, target: string, pass: (v: number) => boolean, from: Record<string, number | undefined>, text: (v: number) => string): void => {
    if (value !== undefined) out.push({ name, value, target, pass: pass(value), from: from as Record<string, number>, text: `${name}: ${text(value)}` })
  }
  add('move 1 GiB vs IPC', ipc1g !== undefined && move1g !== undefined ? ipc1g / move1g : undefined, '>= 1000x', (v) => v >= 1000, { move: move1g, ipc: ipc1g }, (v) => `${v.toFixed(0)}x faster (${formatMs(move1g as number)} vs ${formatMs(ipc1g as number)}; target >= 1000x)`)
  add('move 1 GiB median', move1g, '< 1 ms', (v) => v < 1, { move: move1g }, (v) => `${formatMs(v)} (target < 1 ms)`)
  add('move growth 64 MiB -> 1 GiB', move1g !== undefined && move64m !== undefined ? move1g / move64m : undefined, '< 2x', (v) => v < 2, { move64m, move1g }, (v) => `${v.toFixed(2)}x (${formatMs(move64m as number)} -> ${formatMs(move1g as number)}; target < 2x)`)
  add('cma 1 GiB (Buffer into a pre-touched target) vs memcpy', cma1g !== undefined && memcpy1g !== undefined ? memcpy1g / cma1g : undefined, '>= 0.5x', (v) => v >= 0.5, { cma: cma1g, memcpy: memcpy1g }, (v) => `${v.toFixed(2)}x the memcpy bandwidth (${formatMs(cma1g as number)} vs ${formatMs(memcpy1g as number)}; target >= 0.5x)`)
  return out
}

/** Inline gifts (the gift() row up to INLINE_MAX) against a forced move of the same size. */
function crossover (rows: Row[]): string[] {
  return [...new Set(rows.filter((r) => r.method === METHOD.moveForced && r.samples.length > 0).map((r) => r.size))].map((size) => {
    const gift = medianOf(rows, METHOD.giftAlloc, size) as number
    const move = medianOf(rows, METHOD.moveForced, size) as number
    const by = rows.find((r) => r.method === METHOD.giftAlloc && r.size === size)?.paths.join('/') ?? '?'
    return `${formatBytes(size)}: gift() by ${by} ${formatMs(gift)}, forced move ${formatMs(move)} (gift/move ${(gift / move).toFixed(2)}x)`
  })
}

function limitRatios (rows: Row[], limits: Limits): Ratio[] {
  if (!('probes' in limits)) return []
  const p = limits.probes
  const us = (ms: number | undefined): number | undefined => ms === undefined ? undefined : ms * 1000
  const out: Ratio[] = []
  const add = (name: string, figure: number | undefined, limit: number | undefined, what: string, of = 'pagegift'): void => {
    if (figure === undefined || limit === undefined) return
    out.push({ name, value: figure / limit, from: { [`${of}_us`]: figure, limit_us: limit }, text: `${name}: ${(figure / limit).toFixed(1)}x (${figure.toFixed(1)} µs vs ${limit.toFixed(1)} µs: ${what})` })
  }
  const small = us(medianOf(rows, METHOD.giftAlloc, 64))
  add('64 B gift vs one message to a process asleep in epoll', small, p.wake?.median_us, 'limits.c wake, one way')
  add('64 B gift vs half a sendmsg/recvmsg round trip', small, p.rtt === undefined ? undefined : p.rtt.median_us / 2, 'limits.c rtt / 2')
  // The baseline against its own floor: a stream socket's wake-up costs the kernel less than a packet's.
  add('64 B net socket write vs one write to a process asleep in epoll (stream)', us(medianOf(rows, METHOD.net, 64)), p.wake_stream?.median_us, 'limits.c wake_stream, one way', 'net')
  const big = us(medianOf(rows, METHOD.giftAlloc, 4 * 2 ** 30))
  const moveLimit = p.rtt_fd === undefined || p.mmap_4g === undefined || p.wake === undefined ? undefined : p.wake.median_us + (p.rtt_fd.median_us - p.rtt.median_us) / 2 + p.mmap_4g.median_us
  add('4 GiB move vs one message with an fd + mmap of 4 GiB', big, moveLimit, 'wake + (rtt_fd - rtt) / 2 + mmap_4g')
  return out
}

function tableRow (r: Row): Record<string, string | number> {
  const base = { size: formatBytes(r.size), method: r.method, path: r.paths.join('/') }
  if (r.samples.length === 0) return { ...base, runs: 0, median: 'not run*', 'min–max': '', spread: '', 'GB/s': '' }
  const s: Stats = stats(r.samples)
  return { ...base, runs: s.runs, median: formatMs(s.median), 'min–max': `${formatMs(s.min)} – ${formatMs(s.max)}`, spread: `${spread(r.samples).toFixed(2)}x`, 'GB/s': gbps(r.size, s.median) }
}

function chart (rows: Row[]): string {
  const methods = [...new Set(rows.map((r) => r.method))]
  const series = methods.map((method) => ({ method, points: rows.filter((r) => r.method === method && r.samples.length > 0).map((r): [number, number] => [r.size, stats(r.samples).median]) }))
  return lineChart(series.filter((s) => s.points.length > 0).map((s) => ({ name: s.method, points: s.points })), {
    title: 'Transfer to a child process: median latency against size (log-log)',
    x: { label: 'bytes', log: true, format: (v) => formatBytes(v), ticks: [...new Set(rows.map((r) => r.size))].sort((a, b) => a - b) },
    y: { label: 'median time, send call to bytes usable in the child', log: true, format: (v) => formatMs(v) },
  })
}

export function report (run: Run): void {
  const { rows, stream, limits } = run
  const warnings = validity(rows)
  const valid = warnings.length === 0
  process.stdout.write('\ntransfer to a child process; time from the send call to the bytes usable in the child; spread = q3/q1; GB/s = 1e9 bytes/s\n')
  process.stdout.write(`${cpus().length} CPUs, Linux ${kernel()}, Node ${process.version}; 1-min load average ${run.load.map((l) => l.toFixed(1)).join(' at start, ')} at end\n`)
  if (!valid) process.stdout.write(`\n*** WARNING: THIS RUN IS INVALID ***\n${warnings.map((w) => `  ${w}\n`).join('')}\n`)
  printTable(rows.map((r) => ({ ...tableRow(r), ...(valid ? {} : { valid: 'INVALID' }) })))
  const skipped = [...new Set(rows.map((r) => r.skipped).filter((x) => x !== undefined))]
  if (skipped.length > 0) process.stdout.write(`* ${skipped.join('; ')}\n`)
  const ratios = [...targetRatios(rows), ...pathRatios(rows)]
  process.stdout.write(`\ntargets (ratios of medians in this run${valid ? '' : ', INVALID RUN'}):\n`)
  for (const r of ratios) process.stdout.write(`  ${r.pass === true ? 'PASS' : 'FAIL'}  ${r.text}\n`)
  const cross = crossover(rows)
  if (cross.length > 0) process.stdout.write(`\ncrossover (alloc() memory goes inline up to ${formatBytes(INLINE_MAX_PAGES)}, other memory up to ${formatBytes(INLINE_CHUNKED_MAX)}, in messages of ${formatBytes(INLINE_MAX)}):\n${cross.map((c) => `  ${c}\n`).join('')}`)
  const streamRatio = streamReport(stream)
  const lim = limitRatios(rows, limits)
  process.stdout.write('\nkernel limits (bench/limits.c):\n')
  if ('skipped' in limits) process.stdout.write(`  ${limits.skipped}\n`)
  else for (const l of Object.values(limits.probes)) process.stdout.write(`  ${l.name}: median ${l.median_us.toFixed(1)} µs (p10 ${l.p10_us.toFixed(1)}, p90 ${l.p90_us.toFixed(1)}, ${l.runs} runs)\n`)
  for (const r of lim) process.stdout.write(`  ${r.text}\n`)
  process.stdout.write(`\n(whole run: ${formatMs(run.elapsedMs)})\n`)
  const file = writeResults('transfer', {
    valid, warnings,
    host: { cpus: cpus().length, kernel: kernel(), loadAverage: run.load },
    options: run.options, elapsedMs: run.elapsedMs, inlineMax: INLINE_MAX, inlineMaxPages: INLINE_MAX_PAGES,
    rows: rows.map((r) => ({ ...r, stats: r.samples.length > 0 ? { ...stats(r.samples), spread: spread(r.samples) } : undefined })),
    ratios, crossover: cross, stream, streamRatio, limits, limitRatios: lim,
  })
  const svg = file.replace(/\.json$/, '.svg')
  writeFileSync(svg, chart(rows))
  process.stdout.write(`chart: ${svg}\n`)
}

function streamReport (stream: StreamResult[]): Ratio | undefined {
  if (stream.length !== 2 || stream.some((s) => s.rates.length === 0)) return undefined
  const [gift, net] = stream.map((s) => stats(s.rates))
  process.stdout.write('\nstream: 20000 messages of 1 KiB, at most 64 in flight (messages/s, median of 5):\n')
  for (const [i, s] of stream.entries()) {
    const st = [gift, net][i]
    process.stdout.write(`  ${s.method}: ${st.median.toFixed(0)}/s (${st.min.toFixed(0)} – ${st.max.toFixed(0)})\n`)
  }
  const value = gift.median / net.median
  process.stdout.write(`  ${value >= 1 ? 'PASS' : 'FAIL'}  gift stream vs net stream: ${value.toFixed(2)}x (${gift.median.toFixed(0)}/s vs ${net.median.toFixed(0)}/s; target >= 1x)\n`)
  return { name: 'stream gift vs net', value, target: '>= 1x', pass: value >= 1, from: { gift: gift.median, net: net.median }, text: '' }
}
