/**
 * Transactions (MULTI, EXEC, DISCARD, WATCH, UNWATCH) and the client-level dispatch around the
 * command table: queueing inside MULTI, RESP2's subscribed-mode restrictions, and the key touches
 * that WATCH and blocked clients need. Nothing of this is per stored key: a watched key has one
 * entry in `Watches` (server side) while some client watches it, and the store is never asked.
 */
import { RespParser } from '../resp.ts'
import { encodeCommand, hubOf, keyId, sessionOf, type Session, type WatchedKey } from '../session.ts'
import type { Store } from '../store.ts'
import type { Ctx } from './context.ts'
import type { Command } from './types.ts'

/** Commands that run at once inside MULTI instead of being queued (as in Redis 7.2). */
const TX_CONTROL = new Set(['exec', 'discard', 'multi', 'watch', 'quit', 'reset'])
/** Commands Redis 7.2 flags no-multi: refused at queue time, which aborts the transaction. */
const NO_MULTI = new Set(['save', 'shutdown', 'monitor', 'sync', 'psync', 'replicaof', 'slaveof', 'failover'])
/** What a RESP2 client may run while subscribed. */
const SUBSCRIBED_OK = new Set(['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe', 'ping', 'quit', 'reset'])

interface WatchEntry { db: number, key: Buffer, sessions: Set<Session> }

/** The watched keys of all clients: one entry per watched key, only while watched. */
declare module '../session.ts' {
  /** The WATCHed keys' registry, which this module owns (session.ts does not import it). */
  interface Hub { readonly watches: Watches }
}

export class Watches {
  private readonly byKey = new Map<string, WatchEntry>()

  get active (): boolean {
    return this.byKey.size > 0
  }

  add (s: Session, w: WatchedKey): void {
    let e = this.byKey.get(w.id)
    if (e === undefined) this.byKey.set(w.id, e = { db: w.db, key: w.key, sessions: new Set() })
    e.sessions.add(s)
    s.watched.push(w)
  }

  unwatchAll (s: Session): void {
    for (const w of s.watched) {
      const e = this.byKey.get(w.id)
      if (e === undefined) continue
      e.sessions.delete(s)
      if (e.sessions.size === 0) this.byKey.delete(w.id)
    }
    s.watched = []
    s.watchDirty = false
  }

  /** A write to this key: every client watching it fails its next EXEC. */
  touch (id: string): void {
    const e = this.byKey.get(id)
    if (e !== undefined) for (const s of e.sessions) s.watchDirty = true
  }

  /** A whole database changes (FLUSHDB, FLUSHALL, SWAPDB): touches its watched keys for which `affected` says so. */
  touchDb (db: number, affected: (key: Buffer) => boolean): void {
    for (const e of this.byKey.values()) {
      if (e.db === db && affected(e.key)) for (const s of e.sessions) s.watchDirty = true
    }
  }

  /** Databases that have watched keys. */
  dbs (): Set<number> {
    return new Set([...this.byKey.values()].map((e) => e.db))
  }
}

/** The store of database `db`, if it was ever used. */
export function storeOf (c: Ctx, db: number): Store | undefined {
  return c.server.dbs.peek(db)
}

function exists (store: Store | undefined, key: Buffer): boolean {
  return store !== undefined && store.find(key, 0, key.length) >= 0
}

/** Redis's checks before a command runs: arity and AUTH (dispatch answers them; this only tells). */
function rejected (c: Ctx, cmd: Command): boolean {
  if ((cmd.arity > 0 && c.argc !== cmd.arity) || (cmd.arity < 0 && c.argc < -cmd.arity)) return true
  return !c.client.authenticated && cmd.noAuth !== true && c.server.requirePass
}

/**
 * Runs the parsed command of a client: queued inside MULTI, refused in RESP2 subscribed mode,
 * otherwise run. The common case (no MULTI, no subscription, nobody watching or blocked) is
 * the command table's dispatch and nothing else.
 */
export function execute (c: Ctx): void {
  const s = sessionOf(c)
  const h = hubOf(c)
  const subscribed = s.resp === 2 && (s.channels.size > 0 || s.patterns.size > 0)
  if (s.tx === null && !subscribed && !h.watches.active && !h.blocking.active) { h.dispatch(c); return }
  const cmd = h.lookup(c)
  if (subscribed && cmd !== undefined && !SUBSCRIBED_OK.has(cmd.name)) {
    c.out.error(`ERR Can't execute '${cmd.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`)
    if (s.tx !== null) s.tx.failed = true
    return
  }
  if (s.tx !== null && (cmd === undefined || !TX_CONTROL.has(cmd.name))) {
    if (cmd === undefined || rejected(c, cmd)) {
      s.tx.failed = true
      h.dispatch(c)
      return
    }
    if (NO_MULTI.has(cmd.name)) {
      s.tx.failed = true
      c.out.error('ERR Command not allowed inside a transaction')
      return
    }
    s.tx.commands.push(encodeCommand(c))
    c.out.simple('QUEUED')
    return
  }
  if (subscribed && cmd?.name === 'ping' && c.argc <= 2) {
    // RESP2 subscribed PING answers as a message would, as Redis does.
    c.out.arrayHeader(2)
    c.out.bulkString('pong')
    if (c.argc === 2) c.out.bulk(c.buf, c.s(1), c.e(1))
    else c.out.bulkString('')
    return
  }
  run(c, cmd)
}

/** Runs a command and tells WATCH and the blocked clients which keys it wrote. */
function run (c: Ctx, cmd: Command | undefined): void {
  const h = hubOf(c)
  if (cmd === undefined || (!h.watches.active && !h.blocking.active) || rejected(c, cmd)) { h.dispatch(c); return }
  if (h.watches.active) touchDatabases(c, cmd)
  h.dispatch(c)
  if (cmd.name === 'swapdb' && c.argc === 3 && h.blocking.active) wakeSwapped(c)
  // A movablekeys command (SORT ... STORE) tells WATCH and the blocked clients of what it wrote itself.
  if (!cmd.flags.includes('write') || cmd.keys[0] <= 0 || cmd.flags.includes('movablekeys')) return
  const [first, last, step] = cmd.keys
  const end = last < 0 ? c.argc + last : last
  const db = sessionOf(c).db
  for (let i = first; i <= end && i < c.argc; i += step) {
    const id = keyId(db, c.buf, c.s(i), c.e(i))
    h.watches.touch(id)
    h.blocking.signal(id)
  }
}

/** SWAPDB wakes the clients blocked on keys of either database, as Redis does (their keys may now hold something). */
function wakeSwapped (c: Ctx): void {
  const a = c.num(1)
  const b = c.num(2)
  if (a === null || b === null) return
  hubOf(c).blocking.signalDb(a)
  hubOf(c).blocking.signalDb(b)
}

/** FLUSHDB, FLUSHALL and SWAPDB touch the watched keys they change: those that exist, as in Redis. */
function touchDatabases (c: Ctx, cmd: Command): void {
  const w = hubOf(c).watches
  const db = sessionOf(c).db
  if (cmd.name === 'flushdb') {
    w.touchDb(db, (k) => exists(storeOf(c, db), k))
  } else if (cmd.name === 'flushall') {
    for (const d of w.dbs()) w.touchDb(d, (k) => exists(storeOf(c, d), k))
  } else if (cmd.name === 'swapdb' && c.argc === 3) {
    const a = c.num(1)
    const b = c.num(2)
    if (a === null || b === null) return
    const either = (k: Buffer): boolean => exists(storeOf(c, a), k) || exists(storeOf(c, b), k)
    w.touchDb(a, either)
    w.touchDb(b, either)
  }
}

function multi (c: Ctx): void {
  const s = sessionOf(c)
  if (s.tx !== null) { c.out.error('ERR MULTI calls can not be nested'); return }
  s.tx = { commands: [], failed: false }
  c.out.ok()
}

function discard (c: Ctx): void {
  const s = sessionOf(c)
  if (s.tx === null) { c.out.error('ERR DISCARD without MULTI'); return }
  s.tx = null
  hubOf(c).watches.unwatchAll(s)
  c.out.ok()
}

/** A watched key that had a TTL and has reached it since: Redis counts that as a change. */
function watchedExpired (c: Ctx, s: Session): boolean {
  for (const w of s.watched) if (w.expireAt !== 0 && w.expireAt <= c.store.now) return true
  return false
}

function exec (c: Ctx): void {
  const s = sessionOf(c)
  const tx = s.tx
  if (tx === null) { c.out.error('ERR EXEC without MULTI'); return }
  s.tx = null
  const watches = hubOf(c).watches
  if (tx.failed) {
    watches.unwatchAll(s)
    c.out.error('EXECABORT Transaction discarded because of previous errors.')
    return
  }
  const aborted = s.watchDirty || watchedExpired(c, s)
  watches.unwatchAll(s)
  if (aborted) { c.out.nilArray(); return }
  c.out.arrayHeader(tx.commands.length)
  const outer = c.p
  const p = new RespParser()
  s.inExec = true
  try {
    for (const wire of tx.commands) {
      p.parse(wire, 0, wire.length)
      c.bind(p, s)
      run(c, hubOf(c).lookup(c))
    }
  } finally {
    s.inExec = false
    c.bind(outer, s)
  }
}

function watch (c: Ctx): void {
  const s = sessionOf(c)
  if (s.tx !== null) { c.out.error('ERR WATCH inside MULTI is not allowed'); return }
  const watches = hubOf(c).watches
  for (let i = 1; i < c.argc; i++) {
    const id = keyId(s.db, c.buf, c.s(i), c.e(i))
    if (s.watched.some((w) => w.id === id)) continue
    const slot = c.store.find(c.buf, c.s(i), c.e(i))
    const expireAt = slot >= 0 ? c.store.seg.expireAt(c.store.off) : 0
    watches.add(s, { id, db: s.db, key: c.copy(i), expireAt })
  }
  c.out.ok()
}

function unwatch (c: Ctx): void {
  hubOf(c).watches.unwatchAll(sessionOf(c))
  c.out.ok()
}

const tx = ['noscript', 'loading', 'stale', 'fast', 'allow_busy']
export const multiCommands: Command[] = [
  { name: 'multi', arity: 1, flags: tx, keys: [0, 0, 0], run: multi },
  { name: 'exec', arity: 1, flags: ['noscript', 'loading', 'stale', 'skip_slowlog'], keys: [0, 0, 0], run: exec },
  { name: 'discard', arity: 1, flags: tx, keys: [0, 0, 0], run: discard },
  { name: 'watch', arity: -2, flags: tx, keys: [1, -1, 1], run: watch },
  { name: 'unwatch', arity: 1, flags: tx, keys: [0, 0, 0], run: unwatch }
]
