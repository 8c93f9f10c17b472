/**
 * Compiles and runs bench/limits.c, the least the kernel needs for what a gift does. Without a C
 * compiler the bench says so and leaves the limits out.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface Limit { name: string, median_us: number, p10_us: number, p90_us: number, runs: number }
export type Limits = { probes: Record<string, Limit> } | { skipped: string }

export function probeLimits (): Limits {
  const dir = mkdtempSync(join(tmpdir(), 'pagegift-limits-'))
  const bin = join(dir, 'limits')
  try {
    const source = join(dirname(fileURLToPath(import.meta.url)), 'limits.c')
    try {
      execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', bin, source], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 })
    } catch (err) {
      return { skipped: `no C compiler could build bench/limits.c (${(err as Error).message.split('\n')[0]}), so the limits are not measured` }
    }
    process.stdout.write('kernel limits (bench/limits.c)...\n')
    const out = execFileSync(bin, { encoding: 'utf8', timeout: 300_000 })
    const probes = Object.fromEntries(out.trim().split('\n').map((line) => JSON.parse(line) as Limit).map((l) => [l.name, l]))
    return { probes }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
