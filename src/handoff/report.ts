/**
 * Keeps a status answer inside one channel message. `pagegift status` and a watch get the whole
 * report in one frame of at most 64 KiB of JSON, but a report grows with the history (up to
 * LIMITS.history records, each listing its regions), the regions and the handles: a service with
 * many map segments outgrew the frame after a few dozen upgrades, and status then failed. Long
 * region lists in the history are summed up by path, and what still does not fit is left out,
 * oldest history first, with counts of what was.
 */
import { MAX_JSON } from '../wire.ts'
import type { HandoffRecord, RegionReport, StatusReport } from './types.ts'

/** Room left in the frame for the envelope around the report. */
export const STATUS_BUDGET = MAX_JSON - 1024
/** A history record lists its regions one by one up to this many; past it, one entry per path. */
export const LISTED_REGIONS = 16

/** A record with a long region list summed up: one entry per path (and reason), `regionCount` the real count. */
export function summariseRecord (r: HandoffRecord): HandoffRecord {
  if (r.regions.length <= LISTED_REGIONS) return r
  const groups = new Map<string, RegionReport & { n: number }>()
  for (const x of r.regions) {
    const key = `${x.path}\0${x.reason ?? ''}`
    const g = groups.get(key) ?? { name: '', bytes: 0, path: x.path, ...(x.reason !== undefined ? { reason: x.reason } : {}), n: 0 }
    g.n++
    g.bytes += x.bytes
    groups.set(key, g)
  }
  const regions = [...groups.values()].map(({ n, ...g }) => ({ ...g, name: `(${n} regions)` }))
  return { ...r, regions, regionCount: r.regionCount ?? r.regions.length }
}

const size = (x: unknown): number => Buffer.byteLength(JSON.stringify(x))

/** A record for a message of its own (the watchers' 'committed' event): summed up only if it would not fit. */
export function fitRecord (r: HandoffRecord, budget = STATUS_BUDGET): HandoffRecord {
  return size(r) <= budget ? r : summariseRecord(r)
}

/** The report, bounded to `budget` bytes of JSON (see the file comment). */
export function boundStatus (report: StatusReport, budget = STATUS_BUDGET): StatusReport {
  const out: StatusReport = { ...report, history: report.history.map(summariseRecord) }
  const omitted = { history: 0, regions: 0, handles: 0 }
  const fits = (): boolean => size({ ...out, omitted }) <= budget
  const halve = (): void => {
    const regions = out.regions.slice(0, Math.floor(out.regions.length / 2))
    const handles = out.handles.slice(0, Math.floor(out.handles.length / 2))
    omitted.regions += out.regions.length - regions.length
    omitted.handles += out.handles.length - handles.length
    out.regions = regions
    out.handles = handles
  }
  const listed = (): boolean => out.regions.length > 0 || out.handles.length > 0
  // Thousands of connections must not push the history out: the lists get half the room at most, then history goes, oldest first.
  while (size([out.regions, out.handles]) > budget / 2 && listed()) halve()
  while (!fits() && out.history.length > 0) { out.history = out.history.slice(1); omitted.history++ }
  while (!fits() && listed()) halve()
  if (omitted.history + omitted.regions + omitted.handles > 0) out.omitted = omitted
  return out
}
