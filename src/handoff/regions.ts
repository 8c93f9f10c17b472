/**
 * How regions travel. A giftable region is shared: its sealed memfds go in STATE and the successor
 * maps the same pages (no copy, cost independent of size), while the predecessor keeps its own
 * mapping for a rollback. Any other region is copied into chunks that go down the gift ladder after
 * STATE, with progress; the predecessor's original stays untouched.
 */
import { PagegiftError } from '../errors.ts'
import type { Env, HandoffChannel } from './env.ts'
import { protocolError, type RegionWire } from './protocol.ts'
import type { RegionReport } from './types.ts'

export const CHUNK_BYTES = 16 << 20

export interface RegionPlan {
  wire: RegionWire[]
  fds: number[]
  /** Regions to send down the gift ladder after STATE, in wire order. */
  gifts: { name: string, bytes: Uint8Array }[]
}

function asBytes (name: string, x: unknown): Uint8Array {
  if (x instanceof ArrayBuffer) return new Uint8Array(x)
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
  throw new TypeError(`onHandoff: regions.${name} must be an ArrayBuffer or an ArrayBufferView`)
}

/**
 * Splits regions into shared ones (fds appended to `fdBase`) and gifted ones. A region whose buffer
 * is the one offered under the same name before quiescing is only named: the successor has it mapped.
 */
export function planRegions (env: Env, regions: Record<string, ArrayBuffer | ArrayBufferView>, fdBase: number, offered: Map<string, ArrayBuffer> = new Map(), layouts: Record<string, number> = {}): RegionPlan {
  const plan: RegionPlan = { wire: [], fds: [], gifts: [] }
  for (const [name, value] of Object.entries(regions)) {
    const bytes = asBytes(name, value)
    const layout = Object.hasOwn(layouts, name) ? layouts[name] : 0
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer
    if (whole && offered.get(name) === bytes.buffer) {
      plan.wire.push({ name, byteLength: bytes.byteLength, mode: 'offered', extents: [], layout })
      continue
    }
    const shared = whole ? env.share(bytes.buffer as ArrayBuffer) : null
    if (shared !== null) {
      const base = fdBase + plan.fds.length
      plan.fds.push(...shared.fds)
      plan.wire.push({ name, byteLength: bytes.byteLength, mode: 'share', extents: shared.extents.map((e) => ({ ...e, fd: e.fd + base })), layout })
    } else {
      plan.wire.push({ name, byteLength: bytes.byteLength, mode: 'gift', extents: [], layout })
      plan.gifts.push({ name, bytes })
    }
  }
  return plan
}

/** Sends the gifted regions chunk by chunk; a copy of each chunk is gifted so the original stays ours. */
export async function sendGifts (ch: HandoffChannel, plan: RegionPlan, progress: (name: string, done: number, total: number) => void): Promise<Map<string, RegionReport>> {
  const reports = new Map<string, RegionReport>()
  for (const { name, bytes } of plan.gifts) {
    let report: RegionReport = { name, bytes: bytes.byteLength, path: 'copy' }
    for (let off = 0; off < bytes.byteLength; off += CHUNK_BYTES) {
      const end = Math.min(off + CHUNK_BYTES, bytes.byteLength)
      // The gift detaches the copy at once, never our original.
      const receipt = await ch.gift(bytes.slice(off, end).buffer, { meta: { region: name, offset: off } })
      if (off === 0) report = { name, bytes: bytes.byteLength, path: receipt.path as RegionReport['path'], ...(receipt.reason !== undefined ? { reason: receipt.reason } : {}) }
      progress(name, end, bytes.byteLength)
    }
    reports.set(name, report)
  }
  return reports
}

/** Giftable regions to offer before quiescing; the rest wait for STATE. */
export function offerable (env: Env, regions: Record<string, ArrayBuffer>): Map<string, ArrayBuffer> {
  const out = new Map<string, ArrayBuffer>()
  for (const [name, buf] of Object.entries(regions)) if (buf instanceof ArrayBuffer && env.share(buf) !== null) out.set(name, buf)
  return out
}

/** Takes the offered regions that STATE names; releases the offered ones it does not. */
export function takeOffered (env: Env, wire: RegionWire[], offered: Map<string, ArrayBuffer>, out: Record<string, ArrayBuffer>): void {
  for (const r of wire) {
    if (r.mode !== 'offered') continue
    const buf = offered.get(r.name)
    if (buf === undefined || buf.byteLength !== r.byteLength) throw protocolError(`region '${r.name}' was not offered (or not with ${r.byteLength} bytes)`)
    out[r.name] = buf
    offered.delete(r.name)
  }
  releaseAll(env, Object.fromEntries(offered))
  offered.clear()
}

/** Maps the shared regions of a STATE. env.map() closes the fds it is given, so each index goes in `consumed` first. */
export function mapShared (env: Env, wire: RegionWire[], fds: number[], out: Record<string, ArrayBuffer>, consumed: Set<number>): void {
  for (const r of wire) {
    if (r.mode !== 'share') continue
    const used = [...new Set(r.extents.map((e) => e.fd))]
    const local = r.extents.map((e) => ({ fd: used.indexOf(e.fd), offset: e.offset, length: e.length }))
    for (const i of used) consumed.add(i)
    out[r.name] = env.map(used.map((i) => fds[i]), local, r.byteLength)
  }
}

/** Receives the gifted regions, in wire order, into fresh giftable buffers; returns the path each took. */
export async function receiveGifts (env: Env, ch: HandoffChannel, wire: RegionWire[], out: Record<string, ArrayBuffer>): Promise<Map<string, RegionReport['path']>> {
  const paths = new Map<string, RegionReport['path']>()
  for (const r of wire) {
    if (r.mode !== 'gift') continue
    const target = env.alloc(Math.max(1, r.byteLength))
    out[r.name] = target
    for (let off = 0; off < r.byteLength; off += CHUNK_BYTES) {
      const length = Math.min(CHUNK_BYTES, r.byteLength - off)
      const gift = await ch.receive({ into: new Uint8Array(target, off, length) })
      const meta = gift.meta as { region?: unknown, offset?: unknown } | null
      if (meta?.region !== r.name || meta.offset !== off || gift.bytes !== length) {
        throw protocolError(`region '${r.name}': expected a ${length}-byte chunk at ${off}, got ${gift.bytes} bytes for ${JSON.stringify(meta)}`)
      }
      if (off === 0) paths.set(r.name, gift.path as RegionReport['path'])
    }
  }
  return paths
}

export function releaseAll (env: Env, regions: Record<string, ArrayBuffer>): void {
  for (const buf of Object.values(regions)) {
    try { env.release(buf) } catch (err) { if (!(err instanceof PagegiftError)) throw err }
  }
}
