/**
 * Blocking pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX, BLMPOP, BZMPOP. A client that finds nothing
 * to pop waits, with an absolute deadline, in a FIFO per key; a write to such a key (by any client,
 * inside EXEC too) marks it ready, and after the command that wrote it the waiters are served in
 * order. A waiter is its command's own arguments plus the deadline, so it travels to a successor
 * in a live upgrade as it is and waits there until its original deadline.
 *
 * The list and sorted-set operations come from the type modules (commands/list.ts, commands/zset.ts).
 */
import { Reply } from '../reply.ts'
import { hubOf, keyId, sessionOf, type Kind, type Session, type Spec, type Waiter } from '../session.ts'
import { T_LIST, T_ZSET } from '../types/access.ts'
import { WRONGTYPE, type Ctx } from './context.ts'
import { listPop, listPush } from './list.ts'
import { zsetPop } from './zset.ts'
import { mpopInto, parseMpop } from './mpop.ts'
import type { Command } from './types.ts'
import { NOTIFY_LIST, NOTIFY_ZSET, notifyKey, notifyPop } from '../notify.ts'
import { answerSent } from '../client-reply.ts'

/** The key's type: 'none', 'list', 'zset', or 'other'. */
function typeOf (c: Ctx, key: Buffer): string {
  if (c.store.find(key, 0, key.length) < 0) return 'none'
  const t = c.store.typeOf()
  return t === T_LIST ? 'list' : t === T_ZSET ? 'zset' : 'other'
}

function parseSpec (argv: Buffer[]): Spec | string {
  const name = argv[0].toString('latin1').toLowerCase()
  if (name === 'blmpop' || name === 'bzmpop') return parseMpop(argv, 2)
  const timeout = argv[argv.length - 1]
  if (name === 'blmove' || name === 'brpoplpush') {
    const side = (b: Buffer): boolean | null => { const w = b.toString('latin1').toLowerCase(); return w === 'left' ? true : w === 'right' ? false : null }
    const fromLeft = name === 'blmove' ? side(argv[3]) : false
    const toLeft = name === 'blmove' ? side(argv[4]) : true
    if (fromLeft === null || toLeft === null) return 'ERR syntax error'
    return { kind: 'blmove', keys: [argv[1]], dest: argv[2], fromLeft, toLeft, timeout }
  }
  const kind = (name === 'brpop' ? 'brpop' : name) as Kind
  return { kind, keys: argv.slice(1, -1), fromLeft: kind === 'blpop', toLeft: false, timeout }
}

/** Redis's timeout argument: seconds, a non-negative float; returns ms or an error. */
function parseTimeout (b: Buffer): number | string {
  const s = b.toString('latin1')
  const v = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) ? Number(s) : NaN
  if (!Number.isFinite(v)) return 'ERR timeout is not a float or out of range'
  if (v < 0) return 'ERR timeout is negative'
  if (v * 1000 > Number.MAX_SAFE_INTEGER) return 'ERR timeout is out of range'
  return Math.ceil(v * 1000)
}

declare module '../session.ts' {
  /** The blocked clients' registry, which this module owns (session.ts does not import it). */
  interface Hub { readonly blocking: Blocking }
}

export class Blocking {
  private readonly byKey = new Map<string, Waiter[]>()
  private readonly ready = new Set<string>()
  private readonly aside = new Reply(4096)
  private frozen = false

  get active (): boolean {
    return this.byKey.size > 0
  }

  /** Waiters, for handover and INFO. */
  waiters (): Waiter[] {
    return [...new Set([...this.byKey.values()].flat())]
  }

  /** A write to key `id`: if someone waits there, serve them after this command. */
  signal (id: string): void {
    if (this.byKey.has(id)) this.ready.add(id)
  }

  /** SWAPDB: every waited-on key of database `db` may now hold something (its content was swapped in). */
  signalDb (db: number): void {
    const prefix = `${db}:`
    for (const id of this.byKey.keys()) if (id.startsWith(prefix)) this.ready.add(id)
  }

  /** Blocks a client: last in the FIFO of each of its keys. */
  block (s: Session, spec: Spec, argv: Buffer[], deadline: number): void {
    const ids = spec.keys.map((k) => keyId(s.db, k, 0, k.length))
    const w: Waiter = { session: s, spec, argv, db: s.db, ids, deadline, timer: null }
    for (const id of new Set(ids)) {
      const q = this.byKey.get(id)
      if (q === undefined) this.byKey.set(id, [w])
      else q.push(w)
    }
    s.blocked = w
    if (!this.frozen) this.arm(w)
  }

  /** Rebuilds a predecessor's waiter from its command and deadline; false if the command is not one. */
  restore (s: Session, argv: Buffer[], deadline: number): boolean {
    const name = argv[0]?.toString('latin1').toLowerCase()
    if (!blockingCommands.some((cmd) => cmd.name === name)) return false
    const spec = parseSpec(argv)
    if (typeof spec === 'string') return false
    this.block(s, spec, argv, deadline)
    // Whatever came meanwhile (nothing can have: a predecessor serves synchronously) is checked at thaw.
    for (const id of s.blocked?.ids ?? []) this.ready.add(id)
    return true
  }

  /** Takes a client out of every FIFO (served, timed out, or gone). */
  unblock (w: Waiter): void {
    if (w.timer !== null) clearTimeout(w.timer)
    w.timer = null
    for (const id of new Set(w.ids)) {
      const q = this.byKey.get(id)
      if (q === undefined) continue
      const i = q.indexOf(w)
      if (i >= 0) q.splice(i, 1)
      if (q.length === 0) this.byKey.delete(id)
    }
    if (w.session.blocked === w) w.session.blocked = null
  }

  /** Stops the deadline timers (a handoff has begun: the successor owns them now, or after a resume). */
  freeze (): void {
    this.frozen = true
    for (const w of this.waiters()) {
      if (w.timer !== null) clearTimeout(w.timer)
      w.timer = null
    }
  }

  thaw (): void {
    this.frozen = false
    for (const w of this.waiters()) this.arm(w)
  }

  /** Serves the waiters of every ready key, in FIFO order, until its value runs out. */
  serveReady (c: Ctx): void {
    while (this.ready.size > 0) {
      const id = this.ready.values().next().value as string
      this.ready.delete(id)
      const q = this.byKey.get(id)
      if (q === undefined) continue
      for (const w of [...q]) if (!this.serve(c, w, id)) break
    }
  }

  /** Tries to answer `w` from the key `id`, in its own database and protocol; false if nothing was there. */
  private serve (c: Ctx, w: Waiter, id: string): boolean {
    const { client, out, store } = c
    c.client = w.session
    c.store = c.server.dbs.db(w.db)
    c.out = this.aside
    this.aside.resp = w.session.resp
    const key = w.spec.keys[w.ids.indexOf(id)]
    try {
      if (typeOf(c, key) === 'none') return false
      if (!popInto(c, w.spec, key)) return false
    } finally {
      c.client = client
      c.out = out
      c.store = store
    }
    this.unblock(w)
    const answer = this.aside.take()
    if (answerSent(w.session)) w.session.deliver(answer)
    w.session.unblocked()
    return true
  }

  private arm (w: Waiter): void {
    if (w.deadline === 0 || w.timer !== null) return
    w.timer = setTimeout(() => this.expire(w), Math.max(0, w.deadline - Date.now()))
  }

  private expire (w: Waiter): void {
    w.timer = null
    if (w.session.blocked !== w) return
    this.release(w, false)
  }

  /** CLIENT UNBLOCK: ends client `id`'s wait as a timeout would, or with `error`; false if it is not blocked. */
  unblockClient (id: number, error: boolean): boolean {
    const w = this.waiters().find((x) => x.session.id === id)
    if (w === undefined) return false
    this.release(w, error)
    return true
  }

  /** Ends a wait with the timeout's null reply, or with CLIENT UNBLOCK's error. */
  private release (w: Waiter, error: boolean): void {
    this.unblock(w)
    this.aside.resp = w.session.resp
    if (error) this.aside.error('UNBLOCKED client unblocked via CLIENT UNBLOCK')
    else if (w.spec.kind === 'blmove') this.aside.nil()
    else this.aside.nilArray()
    const answer = this.aside.take()
    if (answerSent(w.session)) w.session.deliver(answer)
    w.session.unblocked()
  }
}

/** Pops for `spec` from `key` and writes the reply; false if the key had nothing of the right type. */
function popInto (c: Ctx, spec: Spec, key: Buffer): boolean {
  if (spec.kind === 'blmpop' || spec.kind === 'bzmpop') return mpopInto(c, spec, key)
  if (spec.kind === 'bzpopmin' || spec.kind === 'bzpopmax') {
    const got = zsetPop(c.store, key, 0, key.length, spec.kind === 'bzpopmax')
    if (got === null || typeof got === 'string') return false
    notifyPop(c, NOTIFY_ZSET, spec.kind === 'bzpopmax' ? 'zpopmax' : 'zpopmin', key)
    c.out.arrayHeader(3)
    c.out.bulk(key, 0, key.length)
    c.out.bulk(got[0], 0, got[0].length)
    c.out.double(got[1])
    return true
  }
  // A woken BLMOVE whose destination holds another type gets WRONGTYPE and pops nothing (Redis 7.0).
  if (spec.kind === 'blmove' && !['none', 'list'].includes(typeOf(c, spec.dest as Buffer))) { c.out.error(WRONGTYPE); return true }
  const value = listPop(c.store, key, 0, key.length, spec.fromLeft)
  if (value === null) return false
  if (spec.kind === 'blmove') {
    const dest = spec.dest as Buffer
    listPush(c.store, dest, 0, dest.length, spec.toLeft, value, 0, value.length)
    notifyKey(c, NOTIFY_LIST, spec.toLeft ? 'lpush' : 'rpush', dest)
    const h = hubOf(c)
    const id = keyId(sessionOf(c).db, dest, 0, dest.length)
    h.watches.touch(id)
    h.blocking.signal(id)
    c.out.bulk(value, 0, value.length)
  } else {
    c.out.arrayHeader(2)
    c.out.bulk(key, 0, key.length)
    c.out.bulk(value, 0, value.length)
  }
  notifyPop(c, NOTIFY_LIST, spec.fromLeft ? 'lpop' : 'rpop', key)
  const h = hubOf(c)
  h.watches.touch(keyId(sessionOf(c).db, key, 0, key.length))
  return true
}

function wantedType (spec: Spec): string {
  return spec.kind === 'bzpopmin' || spec.kind === 'bzpopmax' || spec.kind === 'bzmpop' ? 'zset' : 'list'
}

/** The command: pop at once if any key has something, else null inside EXEC, else block. */
function blockingPop (c: Ctx): void {
  const argv = Array.from({ length: c.argc }, (_, i) => c.copy(i))
  const spec = parseSpec(argv)
  if (typeof spec === 'string') { c.out.error(spec); return }
  const ms = parseTimeout(spec.timeout)
  if (typeof ms === 'string') { c.out.error(ms); return }
  for (const key of spec.keys) {
    const t = typeOf(c, key)
    if (t === 'none') continue
    if (t !== wantedType(spec)) { c.out.error(WRONGTYPE); return }
    if (spec.kind === 'blmove') {
      const dt = typeOf(c, spec.dest as Buffer)
      if (dt !== 'none' && dt !== 'list') { c.out.error(WRONGTYPE); return }
    }
    if (popInto(c, spec, key)) return
  }
  const s = sessionOf(c)
  if (s.inExec || s.tx !== null) {
    if (spec.kind === 'blmove') c.out.nil()
    else c.out.nilArray()
    return
  }
  hubOf(c).blocking.block(s, spec, argv, ms === 0 ? 0 : Date.now() + ms)
}

/** CLIENT UNBLOCK <id> [TIMEOUT|ERROR]: 1 if that client was blocked here and is now answered. */
export function clientUnblock (c: Ctx): void {
  const id = c.int(2)
  if (id === null) { c.out.error('ERR value is not an integer or out of range'); return }
  const error = c.argc === 4 && c.is(3, 'error')
  if (c.argc === 4 && !error && !c.is(3, 'timeout')) { c.out.error('ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR'); return }
  c.out.int(hubOf(c).blocking.unblockClient(Number(id), error) ? 1 : 0)
}

const flags = ['write', 'noscript', 'blocking']
export const blockingCommands: Command[] = [
  { name: 'blpop', arity: -3, flags, keys: [1, -2, 1], run: blockingPop },
  { name: 'brpop', arity: -3, flags, keys: [1, -2, 1], run: blockingPop },
  { name: 'blmove', arity: 6, flags: [...flags, 'denyoom'], keys: [1, 2, 1], run: blockingPop },
  { name: 'brpoplpush', arity: 4, flags: [...flags, 'denyoom'], keys: [1, 2, 1], run: blockingPop },
  { name: 'bzpopmin', arity: -3, flags: [...flags, 'fast'], keys: [1, -2, 1], run: blockingPop },
  { name: 'bzpopmax', arity: -3, flags: [...flags, 'fast'], keys: [1, -2, 1], run: blockingPop },
  // Keys found through numkeys (movablekeys, as Redis's COMMAND says): the pops touch WATCH themselves.
  { name: 'blmpop', arity: -5, flags, keys: [0, 0, 0], run: blockingPop },
  { name: 'bzmpop', arity: -5, flags, keys: [0, 0, 0], run: blockingPop }
]
