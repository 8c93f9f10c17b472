/**
 * How clients travel in a live upgrade. A client's unread bytes are its query buffer: a big one is
 * giftable memory and moves as a region of its own (offered before the pause, like the store's); the
 * small ones are packed into one region. Nothing travels as a handle's `pending` (a JSON string in
 * STATE, limited in size), so no client, however much of a command it has sent, can make an
 * upgrade roll back.
 */
import type { Conn, AdoptedClient } from './conn.ts'

/** At most this many query buffers move as regions of their own; the rest are copied into the pack. */
export const QUERY_REGIONS = 64
/** Stay well under the handoff's limit on regions (256), the store's included. */
const MAX_REGIONS = 240
const PACK = 'clients.pack'

/** What STATE's meta says about one client. */
export interface ClientMeta {
  name: string
  /** It passed AUTH (or came before there was a password): it stays so in the successor. */
  authenticated: boolean
  /** Its selected database (absent from a predecessor without databases: 0). */
  db?: number
  /** The name of the region holding its query buffer, and the bytes in use there. */
  region?: string
  length?: number
  /** Where its query buffer is in the pack: offset, length. */
  pack?: [number, number]
}

/** Giftable query buffers to move as regions, the biggest first, within the region budget. */
export function queryRegions (conns: Iterable<Conn>, storeRegions: number): Map<string, Conn> {
  const budget = Math.max(0, Math.min(QUERY_REGIONS, MAX_REGIONS - storeRegions - 1))
  const big = [...conns].filter((c) => c.query.region !== null && c.query.len > 0 && !c.closing && !c.socket.destroyed)
  big.sort((a, b) => b.query.len - a.query.len)
  return new Map(big.slice(0, budget).map((c) => [`query.${c.id}.${c.query.regionCount}`, c]))
}

export interface ExportedClients {
  regions: Record<string, ArrayBuffer>
  clients: Record<string, ClientMeta>
  /** The pack, ours to release if the handoff rolls back. */
  pack: ArrayBuffer | null
}

/** Describes the frozen clients (by handle name) and the regions their query buffers travel in. */
export function exportClients (conns: Conn[], storeRegions: number, alloc: (bytes: number) => ArrayBuffer): ExportedClients {
  const own = queryRegions(conns, storeRegions)
  const out: ExportedClients = { regions: {}, clients: {}, pack: null }
  for (const [name, c] of own) {
    out.regions[name] = c.query.region as ArrayBuffer
    out.clients[`client.${c.id}`] = { name: c.name, authenticated: c.authenticated, db: c.db, region: name, length: c.query.len }
  }
  const rest = conns.filter((c) => !(`client.${c.id}` in out.clients))
  const packed = rest.reduce((n, c) => n + c.query.len, 0)
  const pack = packed > 0 ? Buffer.from(out.pack = alloc(packed)) : null
  let at = 0
  for (const c of rest) {
    const meta: ClientMeta = { name: c.name, authenticated: c.authenticated, db: c.db }
    if (pack !== null && c.query.len > 0) {
      meta.pack = [at, c.query.len]
      at += c.query.pending().copy(pack, at)
    }
    out.clients[`client.${c.id}`] = meta
  }
  if (out.pack !== null) out.regions[PACK] = out.pack
  return out
}

/**
 * What the successor needs to rebuild the client named `handle`: its predecessor's meta, checked
 * against the regions that arrived, and the socket's own unread bytes.
 */
export function adoptedClient (m: unknown, regions: Record<string, ArrayBuffer>, pending: Buffer): AdoptedClient {
  // A predecessor from before AUTH sent only the name, and had no password.
  const meta = (typeof m === 'string' ? { name: m, authenticated: true } : typeof m === 'object' && m !== null ? m : {}) as Partial<ClientMeta>
  // A client the predecessor did not vouch for must AUTH again.
  const client: AdoptedClient = { name: typeof meta.name === 'string' ? meta.name : '', authenticated: meta.authenticated === true, db: Number.isInteger(meta.db) && (meta.db as number) >= 0 ? meta.db as number : 0, bytes: [] }
  if (typeof meta.region === 'string') {
    const buffer = regions[meta.region]
    if (!(buffer instanceof ArrayBuffer) || !isLength(meta.length, buffer.byteLength)) throw new TypeError(`pagegift-kv: client query region ${meta.region} is missing or too short`)
    client.region = { buffer, length: meta.length as number }
  }
  if (meta.pack !== undefined) {
    const pack = regions[PACK]
    const [off, len] = Array.isArray(meta.pack) ? meta.pack : []
    if (!(pack instanceof ArrayBuffer) || !isLength(off, pack.byteLength) || !isLength(len, pack.byteLength - (off as number))) throw new TypeError('pagegift-kv: a client\'s bytes are not in the pack')
    client.bytes.push(Buffer.from(pack, off as number, len as number))
  }
  if (pending.length > 0) client.bytes.push(pending)
  return client
}

/** The pack region, which the successor copies from and then releases. */
export function packOf (regions: Record<string, ArrayBuffer>): ArrayBuffer | undefined {
  return regions[PACK]
}

function isLength (x: unknown, max: number): boolean {
  return Number.isInteger(x) && (x as number) >= 0 && (x as number) <= max
}
