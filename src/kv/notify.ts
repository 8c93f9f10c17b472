/**
 * Keyspace notifications, as Redis sends them: with `notify-keyspace-events` set, a command that
 * changes a key publishes `<event>` on `__keyspace@<db>__:<key>` (flag K) and `<key>` on
 * `__keyevent@<db>__:<event>` (flag E), for the classes of event the flags select. Commands call
 * `notify` after their change; the store reports the keys it adds (`new`) and expires itself
 * (`expired`, lazily or in the background) through `storeEvents`. While no server has notifications
 * on (the default), each call costs one check of a module variable.
 */
import type { Ctx } from './commands/context.ts'
import type { Databases } from './databases.ts'
import { hubOf, type Hub } from './session.ts'
import { EXPIRED_KEY, storeEvents, type Store } from './store.ts'

export const NOTIFY_KEYSPACE = 1 << 0
export const NOTIFY_KEYEVENT = 1 << 1
export const NOTIFY_GENERIC = 1 << 2
export const NOTIFY_STRING = 1 << 3
export const NOTIFY_LIST = 1 << 4
export const NOTIFY_SET = 1 << 5
export const NOTIFY_HASH = 1 << 6
export const NOTIFY_ZSET = 1 << 7
export const NOTIFY_EXPIRED = 1 << 8
export const NOTIFY_EVICTED = 1 << 9
export const NOTIFY_STREAM = 1 << 10
export const NOTIFY_KEY_MISS = 1 << 11
export const NOTIFY_MODULE = 1 << 13
export const NOTIFY_NEW = 1 << 14
/** 'A': every class but key misses and new keys, as in Redis. */
const ALL = NOTIFY_GENERIC | NOTIFY_STRING | NOTIFY_LIST | NOTIFY_SET | NOTIFY_HASH | NOTIFY_ZSET | NOTIFY_EXPIRED | NOTIFY_EVICTED | NOTIFY_STREAM | NOTIFY_MODULE

/** Redis's flag letters, in the order CONFIG GET writes them (after 'A' and before K, E, m). */
const CLASSES: [string, number][] = [['g', NOTIFY_GENERIC], ['$', NOTIFY_STRING], ['l', NOTIFY_LIST], ['s', NOTIFY_SET], ['h', NOTIFY_HASH], ['z', NOTIFY_ZSET],
  ['x', NOTIFY_EXPIRED], ['e', NOTIFY_EVICTED], ['t', NOTIFY_STREAM], ['d', NOTIFY_MODULE], ['n', NOTIFY_NEW]]
const LETTERS = new Map<string, number>([...CLASSES, ['A', ALL], ['K', NOTIFY_KEYSPACE], ['E', NOTIFY_KEYEVENT], ['m', NOTIFY_KEY_MISS]])

/** Redis's keyspaceEventsStringToFlags: the flags of `text`, or -1 for a letter it does not know. */
export function parseFlags (text: string): number {
  let flags = 0
  for (const ch of text) {
    const f = LETTERS.get(ch)
    if (f === undefined) return -1
    flags |= f
  }
  return flags
}

/** Redis's keyspaceEventsFlagsToString: what CONFIG GET answers. */
export function formatFlags (flags: number): string {
  let s = ''
  if ((flags & ALL) === ALL) s = 'A'
  else for (const [ch, f] of CLASSES) if ((flags & f) !== 0) s += ch
  if ((flags & NOTIFY_KEYSPACE) !== 0) s += 'K'
  if ((flags & NOTIFY_KEYEVENT) !== 0) s += 'E'
  if ((flags & NOTIFY_KEY_MISS) !== 0) s += 'm'
  return s
}

declare module './session.ts' {
  /** The server's keyspace notifications, which this module owns. */
  interface Hub { readonly keyspace: KeyspaceEvents }
}

/** The servers (one in a process, but tests may run several) whose notifications are on. */
const live = new Set<KeyspaceEvents>()
/** True while `live` is not empty: the one check a command pays when notifications are off. */
let on = false

export class KeyspaceEvents {
  flags = 0
  private readonly names = new Map<string, Buffer>()

  constructor (private readonly server: { readonly dbs: Databases, readonly hub: Hub }) {}

  /** CONFIG SET notify-keyspace-events: null, or Redis's error for a letter it does not know. */
  configure (text: string): string | null {
    const flags = parseFlags(text)
    if (flags < 0) return "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
    this.flags = flags
    if (flags !== 0) live.add(this)
    else live.delete(this)
    on = live.size > 0
    storeEvents.hook = on ? storeEvent : null
    return null
  }

  get text (): string {
    return formatFlags(this.flags)
  }

  /** Publishes `event` for key `b[s, e)` of database `db`, if the flags select its class `type`. */
  publish (type: number, event: string, db: number, b: Buffer, s: number, e: number): void {
    const flags = this.flags
    if ((flags & type) === 0) return
    const key = b.subarray(s, e)
    const ps = this.server.hub.pubsub
    if ((flags & NOTIFY_KEYSPACE) !== 0) ps.publish(Buffer.concat([Buffer.from(`__keyspace@${db}__:`), key]), this.name(event))
    if ((flags & NOTIFY_KEYEVENT) !== 0) ps.publish(Buffer.from(`__keyevent@${db}__:${event}`), key)
  }

  /** Database number of `store` in this server, or -1 (another server's store). */
  dbOf (store: Store): number {
    for (const [i, s] of this.server.dbs.used()) if (s === store) return i
    return -1
  }

  private name (event: string): Buffer {
    let b = this.names.get(event)
    if (b === undefined) this.names.set(event, b = Buffer.from(event))
    return b
  }
}

/** The store added or expired a key: each server whose store it is publishes it. */
function storeEvent (store: Store, kind: number, b: Buffer, s: number, e: number): void {
  for (const k of live) {
    const db = k.dbOf(store)
    if (db < 0) continue
    if (kind === EXPIRED_KEY) k.publish(NOTIFY_EXPIRED, 'expired', db, b, s, e)
    else k.publish(NOTIFY_NEW, 'new', db, b, s, e)
  }
}

/** True while some server has notifications on: for a command whose notify calls need work to prepare. */
export function notifying (): boolean {
  return on
}

/** A command changed the key in argument `i` of its client's database (or of `db`): publishes `event`. */
export function notify (c: Ctx, type: number, event: string, i: number, db = -1): void {
  if (!on) return
  hubOf(c).keyspace.publish(type, event, db < 0 ? c.client.db : db, c.buf, c.s(i), c.e(i))
}

/** A pop from `key` (a list or zset of the client's database): `event`, then `del` if it emptied the key. */
export function notifyPop (c: Ctx, type: number, event: string, key: Buffer): void {
  if (!on) return
  notifyKey(c, type, event, key)
  if (c.store.find(key, 0, key.length) < 0) notifyKey(c, NOTIFY_GENERIC, 'del', key)
}

/** As `notify`, for a key given by its bytes (and database, if not the client's). */
export function notifyKey (c: Ctx, type: number, event: string, key: Buffer, db = -1): void {
  if (!on) return
  hubOf(c).keyspace.publish(type, event, db < 0 ? c.client.db : db, key, 0, key.length)
}
