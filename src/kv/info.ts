/** The INFO reply: Redis's sections that tools read, plus a `pagegift` section about live upgrades. */
import { cpuUsage, memoryUsage } from 'node:process'
import { commandStats } from './commands/table.ts'
import { changesSinceSave } from './commands/stats.ts'
import type { Databases } from './databases.ts'
import type { RdbSaveReport } from './rdb/store.ts'

export interface ServerStats {
  generation: number
  /** Downtime of the last live upgrade, ms, or null. */
  lastDowntimeMs: number | null
  upgrades: number
  /** Commands served by earlier generations. */
  inheritedCommands: number
  /** CLOCK_MONOTONIC (ns) when this generation started serving after its handoff, for clients to line up their own timings. */
  lastServedAtNs: bigint | null
  /** The last live upgrade's pause by phase, ms (handoff's PausePhases), or absent. */
  lastPhases?: Record<string, number | null> | null
}

export interface InfoFacts {
  dbs: Databases
  stats: ServerStats
  port: number
  started: number
  clients: number
  /** Clients waiting in a blocking command (Redis's test suite waits on this count). */
  blocked: number
  commands: number
  connections: number
  lastSave: RdbSaveReport | null
}

type Section = (f: InfoFacts) => Record<string, string | number>

const sections: Record<string, Section> = {
  server: (f) => ({
    redis_version: '7.0.0', redis_mode: 'standalone', pagegift_kv_version: '0.1.0', os: `${process.platform} ${process.arch}`,
    arch_bits: 64, process_id: process.pid, tcp_port: f.port, uptime_in_seconds: Math.floor((Date.now() - f.started) / 1000),
    executable: process.argv[1] ?? ''
  }),
  clients: (f) => ({ connected_clients: f.clients, blocked_clients: f.blocked, maxclients: 10000 }),
  memory: (f) => {
    const m = memoryUsage()
    const used = f.dbs.usedBytes()
    const r = regions(f.dbs)
    return {
      used_memory: used, used_memory_human: human(used), used_memory_rss: m.rss,
      used_memory_rss_human: human(m.rss), used_memory_dataset: r.live, allocated_regions_bytes: r.bytes,
      js_heap_used: m.heapUsed, maxmemory: f.dbs.maxmemory, maxmemory_human: human(f.dbs.maxmemory), maxmemory_policy: 'noeviction'
    }
  },
  persistence: (f) => ({
    loading: 0, rdb_changes_since_last_save: changesSinceSave(),
    pagegift_last_save_keys: f.lastSave?.keys ?? 0, pagegift_last_save_bytes: f.lastSave?.bytes ?? 0,
    pagegift_last_save_ms: f.lastSave === null ? '' : f.lastSave.ms.toFixed(1)
  }),
  stats: (f) => ({
    total_connections_received: f.connections, total_commands_processed: f.commands, expired_keys: f.dbs.expired,
    evicted_keys: 0, migrate_cached_sockets: 0, compacted_bytes: f.dbs.compacted.movedBytes, compacted_segments: f.dbs.compacted.freedSegments
  }),
  replication: () => ({ role: 'master', connected_slaves: 0, master_repl_offset: 0, repl_backlog_active: 0 }),
  cpu: () => {
    const u = cpuUsage()
    return { used_cpu_sys: (u.system / 1e6).toFixed(6), used_cpu_user: (u.user / 1e6).toFixed(6), used_cpu_sys_children: '0.000000', used_cpu_user_children: '0.000000' }
  },
  commandstats: () => commandStats(),
  keyspace: (f) => {
    const out: Record<string, string> = {}
    for (const [i, s] of f.dbs.used()) if (s.size > 0) out[`db${i}`] = `keys=${s.size},expires=${s.expires},avg_ttl=0`
    return out
  },
  pagegift: (f) => ({
    generation: f.stats.generation, upgrades: f.stats.upgrades,
    last_downtime_ms: f.stats.lastDowntimeMs === null ? '' : f.stats.lastDowntimeMs.toFixed(3),
    last_served_at_monotonic_ns: f.stats.lastServedAtNs === null ? '' : String(f.stats.lastServedAtNs),
    last_pause_phases_ms: Object.entries(f.stats.lastPhases ?? {}).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${(v as number).toFixed(3)}`).join(','),
    regions: regions(f.dbs).count, region_bytes: regions(f.dbs).bytes
  })
}

/** The regions of every database: how many, their bytes, and the live bytes in them. */
function regions (dbs: Databases): { count: number, bytes: number, live: number } {
  const r = { count: 0, bytes: 0, live: 0 }
  for (const [, s] of dbs.used()) {
    r.count += s.segments.filter((x) => x !== undefined).length + 1
    r.bytes += s.allocatedBytes
    r.live += s.liveBytes
  }
  return r
}

function human (n: number): string {
  if (n < 1024) return `${n}B`
  const u = ['K', 'M', 'G', 'T']
  let i = -1
  do { n /= 1024; i++ } while (n >= 1024 && i < u.length - 1)
  return `${n.toFixed(2)}${u[i]}`
}

/** Redis's default sections (and ours); `all` and `everything` add commandstats. */
const DEFAULT = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'keyspace', 'pagegift']

/** INFO's text for `section`: one name or several, separated by spaces, each at most once, in our order. */
export function formatInfo (section: string, f: InfoFacts): string {
  const asked = new Set<string>()
  for (const s of section.toLowerCase().split(' ').filter((x) => x !== '')) {
    if (s === 'default') DEFAULT.forEach((x) => asked.add(x))
    else if (s === 'all' || s === 'everything') Object.keys(sections).forEach((x) => asked.add(x))
    else asked.add(s)
  }
  const names = Object.keys(sections).filter((n) => asked.has(n))
  const parts: string[] = []
  for (const name of names) {
    const s = sections[name]
    if (s === undefined) continue
    const title = name === 'pagegift' ? 'Pagegift' : name[0].toUpperCase() + name.slice(1)
    const lines = Object.entries(s(f)).map(([k, v]) => `${k}:${v}`)
    parts.push(`# ${title}\r\n${lines.join('\r\n')}${lines.length > 0 ? '\r\n' : ''}`)
  }
  return parts.join('\r\n')
}
