/** Commands across keys and databases: SELECT, MOVE, SWAPDB, FLUSHDB, RENAME, RENAMENX, COPY. */
import { typeOps, type Store } from '../store.ts'
import { DB_RANGE, NOT_INT, OOM, SYNTAX, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { NOTIFY_GENERIC, notify } from '../notify.ts'

/** Argument i as a database number; replies with Redis's error and returns -1 if it is not one. */
function dbArg (c: Ctx, i: number, notInt = NOT_INT): number {
  const n = c.num(i)
  if (n === null) { c.out.error(notInt); return -1 }
  if (n < 0 || n >= c.server.dbs.count) { c.out.error(DB_RANGE); return -1 }
  return n
}

/**
 * Writes a copy of the record `from.seg/off` (value, type tag and TTL) under key `kb[ks, ke)` in
 * `to`, replacing what is there. The source's place must be read before `to.find` moves `seg/off`
 * when `from` and `to` are the same store. Returns false on OOM.
 */
export function copyRecord (from: Store, to: Store, kb: Buffer, ks: number, ke: number): boolean {
  const seg = from.seg
  const off = from.off
  const tag = seg.tag(off)
  const at = seg.expireAt(off)
  const ops = typeOps[tag & 0xff]
  const vs = seg.valStart(off)
  let value = seg.bytes
  let s = vs
  let e = vs + seg.valLen(off)
  if (ops?.copy !== undefined) {
    value = ops.copy(from, seg, off, to)
    s = 0
    e = value.length
  } else if (from === to) {
    // The write below may rewrite or compact near the source: take the bytes out first.
    value = Buffer.from(seg.bytes.subarray(vs, e))
    s = 0
    e = value.length
  }
  const slot = to.find(kb, ks, ke)
  // A value of the same type would be taken for that type's own update (see Store.write): drop it first.
  if (slot >= 0) to.removeAt(slot)
  return to.write(slot >= 0 ? to.find(kb, ks, ke) : slot, kb, ks, ke, value, s, e, at, tag)
}

function select (c: Ctx): void {
  const n = dbArg(c, 1)
  if (n < 0) return
  c.client.db = n
  c.out.ok()
}

function move (c: Ctx): void {
  const n = dbArg(c, 2)
  if (n < 0) return
  if (n === c.client.db) { c.out.error('ERR source and destination objects are the same'); return }
  const from = c.store
  const to = c.server.dbs.db(n)
  const slot = from.find(c.buf, c.s(1), c.e(1))
  if (slot < 0 || to.find(c.buf, c.s(1), c.e(1)) >= 0) { c.out.int(0); return }
  from.find(c.buf, c.s(1), c.e(1))
  if (!copyRecord(from, to, c.buf, c.s(1), c.e(1))) { c.out.error(OOM); return }
  from.removeAt(from.find(c.buf, c.s(1), c.e(1)))
  c.out.int(1)
  notify(c, NOTIFY_GENERIC, 'move_from', 1)
  notify(c, NOTIFY_GENERIC, 'move_to', 1, n)
}

function swapdb (c: Ctx): void {
  const a = dbArg(c, 1, 'ERR invalid first DB index')
  if (a < 0) return
  const b = dbArg(c, 2, 'ERR invalid second DB index')
  if (b < 0) return
  if (a !== b) c.server.dbs.swap(a, b)
  c.out.ok()
}

function flushdb (c: Ctx): void {
  for (let i = 1; i < c.argc; i++) {
    if (!c.is(i, 'async') && !c.is(i, 'sync')) { c.out.error(SYNTAX); return }
  }
  c.store.flush()
  c.out.ok()
}

function rename (c: Ctx, nx: boolean): void {
  const store = c.store
  if (store.find(c.buf, c.s(1), c.e(1)) < 0) { c.out.error('ERR no such key'); return }
  if (c.e(1) - c.s(1) === c.e(2) - c.s(2) && c.buf.compare(c.buf, c.s(1), c.e(1), c.s(2), c.e(2)) === 0) {
    if (nx) c.out.int(0)
    else c.out.ok()
    return
  }
  if (nx && store.find(c.buf, c.s(2), c.e(2)) >= 0) { c.out.int(0); return }
  store.find(c.buf, c.s(1), c.e(1))
  if (!copyRecord(store, store, c.buf, c.s(2), c.e(2))) { c.out.error(OOM); return }
  store.removeAt(store.find(c.buf, c.s(1), c.e(1)))
  if (nx) c.out.int(1)
  else c.out.ok()
  notify(c, NOTIFY_GENERIC, 'rename_from', 1)
  notify(c, NOTIFY_GENERIC, 'rename_to', 2)
}

/** COPY source destination [DB destination-db] [REPLACE] */
function copy (c: Ctx): void {
  let db = c.client.db
  let replace = false
  for (let i = 3; i < c.argc; i++) {
    if (c.is(i, 'replace')) replace = true
    else if (c.is(i, 'db') && i + 1 < c.argc) {
      db = dbArg(c, ++i)
      if (db < 0) return
    } else { c.out.error(SYNTAX); return }
  }
  const from = c.store
  const to = c.server.dbs.db(db)
  const same = c.e(1) - c.s(1) === c.e(2) - c.s(2) && c.buf.compare(c.buf, c.s(1), c.e(1), c.s(2), c.e(2)) === 0
  if (from === to && same) { c.out.error('ERR source and destination objects are the same'); return }
  if (from.find(c.buf, c.s(1), c.e(1)) < 0) { c.out.int(0); return }
  if (!replace && to.find(c.buf, c.s(2), c.e(2)) >= 0) { c.out.int(0); return }
  from.find(c.buf, c.s(1), c.e(1))
  if (!copyRecord(from, to, c.buf, c.s(2), c.e(2))) { c.out.error(OOM); return }
  c.out.int(1)
  notify(c, NOTIFY_GENERIC, 'copy_to', 2, db)
}

const w = ['write']
export const databaseCommands: Command[] = [
  { name: 'select', arity: 2, flags: ['loading', 'stale', 'fast'], keys: [0, 0, 0], run: select },
  { name: 'move', arity: 3, flags: [...w, 'fast'], keys: [1, 1, 1], run: move },
  { name: 'swapdb', arity: 3, flags: [...w, 'fast'], keys: [0, 0, 0], run: swapdb },
  { name: 'flushdb', arity: -1, flags: w, keys: [0, 0, 0], run: flushdb },
  { name: 'rename', arity: 3, flags: w, keys: [1, 2, 1], run: (c) => rename(c, false) },
  { name: 'renamenx', arity: 3, flags: [...w, 'fast'], keys: [1, 2, 1], run: (c) => rename(c, true) },
  { name: 'copy', arity: -3, flags: [...w, 'denyoom'], keys: [1, 2, 1], run: copy }
]
