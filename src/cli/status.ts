/** `pagegift status <socket> [--json]`: what the generation serving at a handoff socket reports. */
import { status } from '../handoff/client.ts'
import type { HandoffRecord, PausePhases, StatusReport } from '../handoff/types.ts'
import { formatBytes } from '../format.ts'

const USAGE = 'usage: pagegift status <socket> [--json]'

export { formatBytes }

export function formatDuration (ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`
  const parts = [[Math.floor(s / 86400), 'd'], [Math.floor(s / 3600) % 24, 'h'], [Math.floor(s / 60) % 60, 'm'], [s % 60, 's']] as const
  return parts.filter(([v], i) => v > 0 || i === 3).map(([v, u]) => `${v}${u}`).join(' ')
}

export const formatMs = (ms: number | null): string => ms === null ? '?' : ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`

export function describeRecord (r: HandoffRecord): string {
  const paths = [...new Set(r.regions.map((x) => x.path))].join('+') || '-'
  return `generation ${r.generation}: pid ${r.fromPid} -> ${r.toPid}${r.version !== '' ? ` (${r.version})` : ''} at ${r.at}, downtime ${formatMs(r.downtimeMs)}, ${formatBytes(r.bytes)} in ${r.regionCount ?? r.regions.length} region(s) [${paths}], ${r.handles} handle(s)`
}

const PHASE_LABELS: [keyof PausePhases, string][] = [['quiesce', 'quiesce'], ['state', 'STATE sent'], ['adopt', 'fds adopted'], ['ready', 'READY'], ['commit', 'COMMIT'], ['serving', 'SERVING'], ['open', 'gate open']]

/** The pause by phase, in order ("?" where the peer did not say), e.g. "quiesce 40 µs, STATE sent 90 µs, ...". */
export function describePhases (p: PausePhases): string {
  return PHASE_LABELS.filter(([k]) => k !== 'open' || p.open !== null).map(([k, label]) => `${label} ${formatMs(p[k])}`).join(', ')
}

export function describeStatus (s: StatusReport): string {
  const last = s.history[s.history.length - 1]
  const lines = [
    `generation ${s.generation}  pid ${s.pid}${s.version !== '' ? `  version ${s.version}` : ''}  uptime ${formatDuration(s.uptimeMs)}  ${s.state}`,
    `regions (${s.regions.length}${s.omitted !== undefined && s.omitted.regions > 0 ? ` listed, ${s.omitted.regions} more` : ''}, ${formatBytes(s.regions.reduce((n, r) => n + r.bytes, 0))}):`,
    ...s.regions.map((r) => `  ${r.name}  ${formatBytes(r.bytes)}`),
    `handles (${s.handles.length}${s.omitted !== undefined && s.omitted.handles > 0 ? ` listed, ${s.omitted.handles} more` : ''}):`,
    ...s.handles.map((h) => `  ${h.name}  ${h.kind}`),
    `history (${s.history.length}${s.omitted !== undefined && s.omitted.history > 0 ? `, ${s.omitted.history} older left out` : ''}):`,
    ...s.history.map((r) => `  ${describeRecord(r)}`),
    ...(last?.phases !== undefined ? [`last handoff by phase: ${describePhases(last.phases)}`] : []),
  ]
  return lines.join('\n')
}

export async function run (argv: string[]): Promise<number> {
  const json = argv.includes('--json')
  const rest = argv.filter((a) => a !== '--json')
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  if (rest.length !== 1 || rest[0].startsWith('-')) {
    process.stderr.write(USAGE + '\n')
    return 2
  }
  let report: StatusReport
  try {
    report = await status(rest[0], { retryMs: 1000 })
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'ENOENT' || code === 'ECONNREFUSED') {
      process.stderr.write(`pagegift status: no generation is serving at ${rest[0]} [${code}]\n`)
      return 1
    }
    throw err
  }
  process.stdout.write((json ? JSON.stringify(report, null, 2) : describeStatus(report)) + '\n')
  return 0
}
