/**
 * Compiles and runs bench/limits.c, the least the kernel needs for what a gift does. Without a C
 * compiler the bench says so and leaves the limits out.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { compileC } from './lib.ts'

export interface Limit { name: string, median_us: number, p10_us: number, p90_us: number, runs: number }
export type Limits = { probes: Record<string, Limit> } | { skipped: string }

export function probeLimits (): Limits {
  const dir = mkdtempSync(join(tmpdir(), 'pagegift-limits-'))
  try {
    const built = compileC('limits', dir)
    if ('skipped' in built) return { skipped: `${built.skipped}, so the limits are not measured` }
    process.stdout.write('kernel limits (bench/limits.c)...\n')
    const out = execFileSync(built.bin, { encoding: 'utf8', timeout: 300_000 })
    const probes = Object.fromEntries(out.trim().split('\n').map((line) => JSON.parse(line) as Limit).map((l) => [l.name, l]))
    return { probes }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
