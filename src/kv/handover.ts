/**
 * How clients travel in a live upgrade. A client's unread bytes are its query buffer: a big one is
 * giftable memory and moves as a region of its own (offered before the pause, like the store's); the
 * small ones are packed into one region. Nothing travels as a handle's `pending` (a JSON string in
 * STATE, limited in size), so no client, however much of a command it has sent, can make an
 * upgrade roll back.
 */
import type { Socket } from 'node:net'
import type { Conn, AdoptedClient } from './conn.ts'
import type { KvServer } from './server.ts'
import { handoff } from '../index.ts'
import { INCOMPLETE, PROTOCOL_ERROR, RespParser } from './resp.ts'
import { encodeArgs, keyId, type Hub, type Session } from './session.ts'
import { Validator } from '../validate.ts'
import { REPLY_MODES } from './client-reply.ts'

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
  /** RESP3 after HELLO 3 (absent: RESP2). */
  resp?: 3
  /** In a MULTI: whether a command failed to queue (the commands are records). */
  tx?: { failed: boolean }
  /** A watched key was touched: its EXEC fails. */
  watchDirty?: boolean
  /** Blocked until this epoch ms (0: no timeout); its command is a record. */
  blockedUntil?: number
  /** CLIENT REPLY's mode (absent: 0, every reply sent). */
  reply?: number
  /** Where its state records (queued and held commands, watched keys, subscriptions) are in the pack. */
  records?: [number, number]
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

/** A client's connection state beyond its query buffer, as JSON scalars and RESP-encoded records. */
function describeSession (c: Conn): { meta: ClientMeta, records: Buffer | null } {
  const meta: ClientMeta = { name: c.name, authenticated: c.authenticated }
  if (c.resp === 3) meta.resp = 3
  meta.db = c.db
  if (c.watchDirty) meta.watchDirty = true
  if (c.replyMode !== 0) meta.reply = c.replyMode
  const records: Buffer[] = []
  if (c.tx !== null) {
    meta.tx = { failed: c.tx.failed }
    for (const wire of c.tx.commands) records.push(encodeArgs(['tx', ...argsOf(wire)]))
  }
  for (const w of c.watched) records.push(encodeArgs(['watch', String(w.db), String(w.expireAt), w.key]))
  for (const ch of c.channels) records.push(encodeArgs(['channel', Buffer.from(ch, 'latin1')]))
  for (const pat of c.patterns) records.push(encodeArgs(['pattern', Buffer.from(pat, 'latin1')]))
  if (c.blocked !== null) {
    meta.blockedUntil = c.blocked.deadline
    records.push(encodeArgs(['block', ...c.blocked.argv]))
  }
  for (const wire of c.held) records.push(encodeArgs(['held', ...argsOf(wire)]))
  return { meta, records: records.length > 0 ? Buffer.concat(records) : null }
}

/** Describes the frozen clients (by handle name) and the regions their query buffers travel in. */
export function exportClients (conns: Conn[], storeRegions: number, alloc: (bytes: number) => ArrayBuffer): ExportedClients {
  const own = queryRegions(conns, storeRegions)
  const owned = new Map([...own].map(([name, c]) => [c, name]))
  const out: ExportedClients = { regions: {}, clients: {}, pack: null }
  const described = conns.map((c) => ({ c, ...describeSession(c) }))
  const packed = described.reduce((n, d) => n + (d.records?.length ?? 0) + (owned.has(d.c) ? 0 : d.c.query.len), 0)
  const pack = packed > 0 ? Buffer.from(out.pack = alloc(packed)) : null
  let at = 0
  for (const { c, meta, records } of described) {
    const region = owned.get(c)
    if (region !== undefined) {
      out.regions[region] = c.query.region as ArrayBuffer
      meta.region = region
      meta.length = c.query.len
    } else if (pack !== null && c.query.len > 0) {
      meta.pack = [at, c.query.len]
      at += c.query.pending().copy(pack, at)
    }
    if (pack !== null && records !== null) {
      meta.records = [at, records.length]
      at += records.copy(pack, at)
    }
    out.clients[`client.${c.id}`] = meta
  }
  if (out.pack !== null) out.regions[PACK] = out.pack
  return out
}

/**
 * Exports a frozen server's open clients into `handles` (as `client.<id>`), with what they bring:
 * their sessions and query buffers, in regions. The pack is the server's until the handoff ends.
 */
export function exportClientHandles (server: KvServer, storeRegions: number, handles: Record<string, handoff.Handle>): ExportedClients {
  const conns = movingClients(server)
  for (const conn of conns) handles[clientName(conn)] = handoff.exportSocket(conn.socket)
  const moved = exportClients(conns, storeRegions, (n) => server.allocator.alloc(n, 'clients.pack'))
  server.handoffPack = moved.pack
  return moved
}

/** The clients a handoff moves now: open, and not on their way out. */
function movingClients (server: KvServer): Conn[] {
  return [...server.conns].filter((c) => !c.socket.destroyed && !c.closing)
}

const clientName = (conn: Conn): string => `client.${conn.id}`

/**
 * The connections to offer a successor before the pause (`gen.offerSockets`), under the names
 * `exportClientHandles` exports them by: the successor wraps them while this generation serves.
 */
export function offeredClients (server: KvServer): Record<string, Socket> {
  return Object.fromEntries(movingClients(server).map((c) => [clientName(c), c.socket]))
}

/** Rebuilds each inherited client (a `socket` handle) in `server`, frozen, with its session. */
export function adoptClients (server: KvServer, handles: Record<string, handoff.Handle>, clients: Record<string, ClientMeta>, regions: Record<string, ArrayBuffer>): void {
  for (const [name, h] of Object.entries(handles)) {
    if (h.kind !== 'socket') continue
    const { socket, pending } = handoff.adoptSocket(h)
    const conn = server.addSocket(socket, adoptedClient(clients[name], regions, pending))
    restoreSession(conn, server.hub, clients[name], regions)
  }
}

/** The arguments of one RESP-encoded command. */
function argsOf (wire: Buffer): Buffer[] {
  const p = new RespParser()
  if (p.parse(wire, 0, wire.length) < 0) return []
  return Array.from({ length: p.argc }, (_, i) => wire.subarray(p.start[i], p.end[i]))
}

const check = new Validator((why) => new TypeError(`pagegift-kv: a client's state from the predecessor: ${why}`))

/** Each record in `bytes` as its arguments (copies); a record that is not whole RESP is an error. */
function records (bytes: Buffer): Buffer[][] {
  const out: Buffer[][] = []
  const p = new RespParser()
  for (let pos = 0; pos < bytes.length;) {
    const next = p.parse(bytes, pos, bytes.length)
    if (next === INCOMPLETE || next === PROTOCOL_ERROR || p.argc < 1) check.fail('a record is not a whole RESP command')
    out.push(Array.from({ length: p.argc }, (_, i) => Buffer.from(bytes.subarray(p.start[i], p.end[i]))))
    pos = next
  }
  return out
}

/**
 * Gives an adopted client its predecessor's connection state: protocol, database, MULTI and its
 * queued commands, watched keys, subscriptions, and a blocked command with its original deadline.
 * The server's blocking timers are frozen until it serves.
 */
export function restoreSession (s: Session, hub: Hub, m: unknown, regions: Record<string, ArrayBuffer>): void {
  if (typeof m !== 'object' || m === null) return
  const meta = m as Record<string, unknown>
  if (meta.resp !== undefined) s.resp = check.int(meta.resp, 'resp', 2, 3) as 2 | 3
  if (meta.tx !== undefined) s.tx = { commands: [], failed: check.bool(check.obj(meta.tx, 'tx').failed, 'tx.failed') }
  if (meta.watchDirty !== undefined) s.watchDirty = check.bool(meta.watchDirty, 'watchDirty')
  if (meta.reply !== undefined) s.replyMode = check.int(meta.reply, 'reply', 0, REPLY_MODES)
  const deadline = meta.blockedUntil === undefined ? null : check.uint(meta.blockedUntil, 'blockedUntil')
  if (meta.records === undefined) return
  const pack = regions[PACK]
  const [off, len] = check.uints(meta.records, 'records', 2)
  if (!(pack instanceof ArrayBuffer) || off + len > pack.byteLength) check.fail('its records are not in the pack')
  for (const [kind, ...args] of records(Buffer.from(pack, off, len))) restoreRecord(s, hub, kind.toString('latin1'), args, deadline)
}

function restoreRecord (s: Session, hub: Hub, kind: string, args: Buffer[], deadline: number | null): void {
  if (kind === 'tx' && s.tx !== null && args.length > 0) {
    s.tx.commands.push(encodeArgs(args))
  } else if (kind === 'watch' && args.length === 3) {
    const db = check.uint(Number(args[0].toString('latin1')), 'watch db')
    const expireAt = check.uint(Number(args[1].toString('latin1')), 'watch expireAt')
    hub.watches.add(s, { id: keyId(db, args[2], 0, args[2].length), db, key: args[2], expireAt })
  } else if (kind === 'channel' && args.length === 1) {
    hub.pubsub.subscribe(s, args[0].toString('latin1'))
  } else if (kind === 'pattern' && args.length === 1) {
    hub.pubsub.psubscribe(s, args[0].toString('latin1'))
  } else if (kind === 'block' && deadline !== null) {
    if (!hub.blocking.restore(s, args, deadline)) check.fail('its blocked command is not a blocking command')
  } else if (kind === 'held' && args.length > 0) {
    s.held.push(encodeArgs(args))
  } else {
    check.fail(`a '${kind}' record is not understood`)
  }
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
