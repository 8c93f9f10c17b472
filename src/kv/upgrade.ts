/**
 * Live upgrade glue. The first generation serves and waits for successors on the handoff socket.
 * On a handoff it freezes every client at a command boundary and hands over its regions (the
 * store), its listeners and its clients with their unread bytes. A successor adopts all of that
 * without touching it, commits (`gen.ready()`), and runs the clients' held commands as its gate
 * opens (`gen.onServing`).
 */
import { handoff } from '../index.ts'
import { testPoint } from '../testhook.ts'
import { existsSync } from 'node:fs'
import type { KvOptions } from './options.ts'
import type { Allocator } from './segments.ts'
import { KvServer } from './server.ts'
import type { StoreMeta } from './store.ts'
import { Databases, LAYOUTS, type DatabasesMeta } from './databases.ts'
import { startFresh } from './start.ts'
import { warmUp } from './warmup.ts'
import { adoptClients, exportClientHandles, offeredClients, packOf, queryRegions, type ClientMeta } from './handover.ts'

type Generation = handoff.Generation
type HandoffState = handoff.HandoffState
type Handle = handoff.Handle
const { join, exportServer, adoptServer } = handoff

/** What travels as JSON besides the regions. */
interface KvMeta {
  kind: 'pagegift-kv'
  /**
   * The databases (layout 2 on). The previous release sent `store` (one database) instead; this
   * release sends no `store`, so that release, which reads only `store`, refuses it as not
   * pagegift-kv instead of misreading it.
   */
  dbs?: DatabasesMeta
  store?: StoreMeta
  maxmemory: number
  port: number
  commands: number
  upgrades: number
  /** SHA-256 (hex) of the requirepass, or null: a successor started without a password keeps this one. */
  passHash: string | null
  /** notify-keyspace-events, as CONFIG GET writes it (absent from a predecessor without notifications: off). */
  notify?: string
  /** The clients by handle name: their names, AUTH state and where their query buffers are. */
  clients: Record<string, ClientMeta>
}

function checkMeta (m: unknown): KvMeta {
  const meta = m as Partial<KvMeta> | null
  if (meta === null || typeof meta !== 'object' || meta.kind !== 'pagegift-kv' || (typeof meta.store !== 'object' && typeof meta.dbs !== 'object')) {
    throw new TypeError('pagegift-kv: the predecessor on this handoff socket is not pagegift-kv')
  }
  return meta as KvMeta
}

/** Freezes the server and describes everything to hand over. */
export function handOver (server: KvServer): HandoffState {
  server.freeze()
  const handles: Record<string, Handle> = {}
  server.listeners.forEach((l, i) => { handles[`listener.${i}`] = exportServer(l) })
  const { regions, meta: dbs } = server.dbs.exportState()
  const moved = exportClientHandles(server, Object.keys(regions).length, handles)
  const meta: KvMeta = {
    kind: 'pagegift-kv', dbs, maxmemory: server.dbs.maxmemory, port: server.port,
    commands: server.commands + server.stats.inheritedCommands, upgrades: server.stats.upgrades, clients: moved.clients,
    passHash: server.passHash?.toString('hex') ?? null, notify: server.hub.keyspace.text
  }
  return { regions: { ...regions, ...moved.regions }, handles, meta }
}

/** The store's regions and the big query buffers: what a successor may map before the pause. */
function offered (server: KvServer): Record<string, ArrayBuffer> {
  const regions = server.dbs.exportState().regions
  for (const [name, c] of queryRegions(server.conns, Object.keys(regions).length)) regions[name] = c.query.region as ArrayBuffer
  return regions
}

/** Builds a frozen server from a predecessor's state: no mutation, no serving, until `thaw`. */
function adopt (gen: Generation, o: KvOptions, allocator: Allocator): KvServer {
  const inh = gen.inherited
  if (inh === null) throw new Error('pagegift-kv: nothing inherited')
  const meta = checkMeta(inh.meta)
  const opts = { allocator, maxmemory: o.maxmemory > 0 ? o.maxmemory : meta.maxmemory, segmentSize: o.segmentSize }
  const dbs = Databases.adopt(inh.regions, { dbs: meta.dbs, legacy: meta.store }, o.databases, opts)
  const server = new KvServer(dbs, { generation: gen.generation, upgrades: meta.upgrades + 1, inheritedCommands: meta.commands })
  server.snapshotPath = o.snapshot
  server.rdbOutPath = o.rdbOut
  inheritPassword(server, o, meta)
  if (meta.notify !== undefined && (typeof meta.notify !== 'string' || server.hub.keyspace.configure(meta.notify) !== null)) {
    throw new TypeError(`pagegift-kv: the predecessor's notify-keyspace-events is not understood: ${String(meta.notify)}`)
  }
  // Blocked clients' deadlines start counting again once this generation serves (thaw).
  server.hub.blocking.freeze()
  for (const h of Object.values(inh.handles)) if (h.kind === 'server') server.adoptListener(adoptServer(h), meta.port)
  adoptClients(server, inh.handles, meta.clients, inh.regions)
  return server
}

/**
 * The successor's own password, if it was given one, applies from now on (to new connections and
 * every AUTH); clients keep the AUTH state they had. Started without one, it keeps its
 * predecessor's: an upgrade that forgot the password must not open the store to everyone.
 */
function inheritPassword (server: KvServer, o: KvOptions, meta: KvMeta): void {
  if (o.requirepass !== null) server.setPassword(o.requirepass)
  else if (typeof meta.passHash === 'string' && /^[0-9a-f]{64}$/.test(meta.passHash)) server.passHash = Buffer.from(meta.passHash, 'hex')
}

export async function serveWithHandoff (o: KvOptions, allocator: Allocator): Promise<number> {
  // Only a successor has a pause to shorten; the socket exists while a generation serves.
  if (existsSync(o.handoff as string)) await warmUp()
  const gen = await join(o.handoff as string, { version: 'pagegift-kv 0.1.0', layouts: LAYOUTS })
  let server: KvServer
  if (gen.inherited !== null) {
    server = adopt(gen, o, allocator)
    const adopted = server
    // The held commands run as the gate opens, not after the rest of ready() (taking over the handoff socket).
    gen.onServing(() => {
      adopted.stats.lastServedAtNs = process.hrtime.bigint()
      adopted.thaw()
    })
    await testPoint('kv:before-ready')
    await gen.ready()
    // After thaw: status() asks every contributor for its regions, which the first answers need not wait for.
    const last = gen.status().history.at(-1)
    server.stats.lastDowntimeMs = last?.downtimeMs ?? null
    server.stats.lastPhases = last?.phases === undefined ? null : { ...last.phases }
    // Every client copied its share of the pack when it was built.
    const pack = packOf(gen.inherited.regions)
    if (pack !== undefined) allocator.release(pack)
  } else {
    server = await startFresh(o, allocator)
    await gen.ready()
  }
  // Offered regions are mapped by the successor while we still serve, so their size stays out of the pause.
  gen.offerRegions(() => offered(server))
  gen.offerSockets(() => offeredClients(server))
  gen.onHandoff(() => handOver(server))
  gen.on('resumed', (err) => {
    process.stderr.write(`pagegift-kv: handoff failed, serving again: ${err.message}\n`)
    if (server.handoffPack !== null) server.allocator.release(server.handoffPack)
    server.handoffPack = null
    server.thaw()
  })
  let handedOff = false
  gen.on('handedOff', (info) => {
    handedOff = true
    process.stdout.write(`pagegift-kv: handed off to pid ${info.toPid} (generation ${info.generation}), downtime ${info.downtimeMs?.toFixed(3) ?? '?'} ms\n`)
  })
  server.announce()
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve)
    process.once('SIGINT', resolve)
    void server.shutdownRequested.then(resolve)
  })
  await gen.close()
  await server.close()
  // Only the generation that still holds the data saves it; one that handed off has nothing of its own.
  const err = handedOff ? null : server.saveOnShutdown()
  if (err !== null) process.stderr.write(err + '\n')
  return err === null ? 0 : 1
}
