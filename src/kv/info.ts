/** The INFO reply: Redis's sections that tools read, plus a `pagegift` section about live upgrades. */
import { memoryUsage } from 'node:process'
import type { Compactor } from './compactor.ts'
import type { SnapshotReport } from './snapshot.ts'
import type { Store } from './store.ts'

export interface ServerStats {
  generation: number
  /** Downtime of the last live upgrade, ms, or null. */
  lastDowntimeMs: number | null
  upgrades: number
  /** Commands served by earlier generations. */
  inheritedCommands: number
  /** CLOCK_MONOTONIC (ns) when this generation started serving after its handoff, for clients to line up their own timings. */
  lastServedAtNs: bigint | null
}

export interface InfoFacts {
  store: Store
  stats: ServerStats
  port: number
  started: number
  clients: number
  commands: number
  connections: number
  compactor: Compactor
  expired: number
  lastSave: SnapshotReport | null
}

type Section = (f: InfoFacts) => Record<string, string | number>

const sections: Record<string, Section> = {
  server: (f) => ({
    redis_version: '7.0.0', redis_mode: 'standalone', pagegift_kv_version: '0.1.0', os: `${process.platform} ${process.arch}`,
    arch_bits: 64, process_id: process.pid, tcp_port: f.port, uptime_in_seconds: Math.floor((Date.now() - f.started) / 1000),
    executable: process.argv[1] ?? ''
  }),
  clients: (f) => ({ connected_clients: f.clients, maxclients: 10000 }),
  memory: (f) => {
    const m = memoryUsage()
    return {
      used_memory: f.store.usedBytes, used_memory_human: human(f.store.usedBytes), used_memory_rss: m.rss,
      used_memory_rss_human: human(m.rss), used_memory_dataset: f.store.liveBytes, allocated_regions_bytes: f.store.allocatedBytes,
      js_heap_used: m.heapUsed, maxmemory: f.store.maxmemory, maxmemory_human: human(f.store.maxmemory), maxmemory_policy: 'noeviction'
    }
  },
  persistence: (f) => ({
    loading: 0,
    pagegift_last_save_keys: f.lastSave?.keys ?? 0, pagegift_last_save_bytes: f.lastSave?.bytes ?? 0,
    pagegift_last_save_ms: f.lastSave === null ? '' : f.lastSave.ms.toFixed(1)
  }),
  stats: (f) => ({
    total_connections_received: f.connections, total_commands_processed: f.commands, expired_keys: f.expired,
    evicted_keys: 0, compacted_bytes: f.compactor.movedBytes, compacted_segments: f.compactor.freedSegments
  }),
  keyspace: (f): Record<string, string> => f.store.size === 0 ? {} : { db0: `keys=${f.store.size},expires=${f.store.expires},avg_ttl=0` },
  pagegift: (f) => ({
    generation: f.stats.generation, upgrades: f.stats.upgrades,
    last_downtime_ms: f.stats.lastDowntimeMs === null ? '' : f.stats.lastDowntimeMs.toFixed(3),
    last_served_at_monotonic_ns: f.stats.lastServedAtNs === null ? '' : String(f.stats.lastServedAtNs),
    regions: f.store.segments.filter((s) => s !== undefined).length + 1, region_bytes: f.store.allocatedBytes
  })
}

function human (n: number): string {
  if (n < 1024) return `${n}B`
  const u = ['K', 'M', 'G', 'T']
  let i = -1
  do { n /= 1024; i++ } while (n >= 1024 && i < u.length - 1)
  return `${n.toFixed(2)}${u[i]}`
}

export function formatInfo (section: string, f: InfoFacts): string {
  const names = section === 'default' || section === 'all' || section === 'everything' ? Object.keys(sections) : [section]
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
