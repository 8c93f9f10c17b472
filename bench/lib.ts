/** Shared benchmark helpers: repeated timing, medians with spread, a printed table and JSON output. */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatBytes } from '../src/format.ts'

export interface Stats { median: number, min: number, max: number, p99: number, runs: number }

export function stats (samples: number[]): Stats {
  if (samples.length === 0) throw new RangeError('stats() needs at least one sample')
  const s = [...samples].sort((a, b) => a - b)
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]
  const mid = s.length >> 1
  const median = s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
  return { median, min: s[0], max: s[s.length - 1], p99: at(0.99), runs: s.length }
}

/** Runs `fn` `warmup` times unmeasured, then `runs` times, and returns the measured samples (ms). */
export async function sample (runs: number, warmup: number, fn: () => Promise<number>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn()
  const out: number[] = []
  for (let i = 0; i < runs; i++) out.push(await fn())
  return out
}

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6

export { formatBytes }

export function formatMs (ms: number): string {
  if (ms < 0.01) return `${(ms * 1000).toFixed(2)} µs`
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`
  if (ms < 1000) return `${ms.toFixed(2)} ms`
  return `${(ms / 1000).toFixed(2)} s`
}

/** Prints rows as an aligned text table; every row has the same keys as the first. */
export function printTable (rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return
  const keys = Object.keys(rows[0])
  const cells = rows.map((r) => keys.map((k) => String(r[k] ?? '')))
  const widths = keys.map((k, i) => Math.max(k.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]): string => c.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd()
  process.stdout.write(line(keys) + '\n' + line(widths.map((w) => '-'.repeat(w))) + '\n')
  for (const c of cells) process.stdout.write(line(c) + '\n')
}

/** Writes `data` to bench/results/<suite>-<timestamp>.json and returns the path. */
export function writeResults (suite: string, data: unknown): string {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${suite}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({ suite, date: new Date().toISOString(), node: process.version, data }, null, 2) + '\n')
  process.stdout.write(`results: ${file}\n`)
  return file
}

/**
 * Compiles bench/<name>.c with `cc -O2` (or $CC) into `dir`: the binary's path, or why no C compiler
 * could build it (the caller leaves out what needs it, and says so).
 */
export function compileC (name: string, dir: string): { bin: string } | { skipped: string } {
  const bin = join(dir, name)
  try {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', bin, join(dirname(fileURLToPath(import.meta.url)), `${name}.c`)], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 })
    return { bin }
  } catch (err) {
    return { skipped: `no C compiler could build bench/${name}.c (${(err as Error).message.split('\n')[0]})` }
  }
}
