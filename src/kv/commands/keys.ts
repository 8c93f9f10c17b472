/** Keyspace commands: DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN, RANDOMKEY, TOUCH, DBSIZE, FLUSHALL. */
import { Glob } from '../glob.ts'
import type { Store } from '../store.ts'
import { TYPE_NAMES } from '../segments.ts'
import { SYNTAX, NOT_INT, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { scanBuckets } from '../scan.ts'
import { NOTIFY_GENERIC, notify } from '../notify.ts'

function del (c: Ctx): void {
  let n = 0
  for (let i = 1; i < c.argc; i++) {
    const slot = c.store.find(c.buf, c.s(i), c.e(i))
    if (slot >= 0) { c.store.removeAt(slot); n++; notify(c, NOTIFY_GENERIC, 'del', i) }
  }
  c.out.int(n)
}

function exists (c: Ctx): void {
  let n = 0
  for (let i = 1; i < c.argc; i++) if (c.store.find(c.buf, c.s(i), c.e(i)) >= 0) n++
  c.out.int(n)
}

function type (c: Ctx): void {
  c.out.simple(c.store.find(c.buf, c.s(1), c.e(1)) < 0 ? 'none' : TYPE_NAMES[c.store.typeOf()] ?? 'none')
}

/** If slot i holds a live key matching `glob` (any key if null), returns true with store.seg/off set. */
function liveMatch (store: Store, i: number, glob: Glob | null): boolean {
  if (!store.at(i)) return false
  const { seg, off } = store
  const at = seg.expireAt(off)
  if (at !== 0 && at <= store.now) return false
  if (glob === null) return true
  const ks = seg.keyStart(off)
  return glob.matches(seg.bytes, ks, ks + seg.keyLen(off))
}

/** The pattern in argument i, compiled once per command; null for a bare `*`, which Redis answers without matching (so the empty key is included). */
function pattern (c: Ctx, i: number): Glob | null {
  return c.is(i, '*') ? null : Glob.compile(c.buf, c.s(i), c.e(i))
}

function replyKeys (c: Ctx, slots: number[], array = true): void {
  if (array) c.out.arrayHeader(slots.length)
  for (const i of slots) {
    c.store.at(i)
    const ks = c.store.seg.keyStart(c.store.off)
    c.out.bulk(c.store.seg.bytes, ks, ks + c.store.seg.keyLen(c.store.off))
  }
}

function keys (c: Ctx): void {
  const store = c.store
  const glob = pattern(c, 1)
  const slots: number[] = []
  for (let i = 0; i < store.index.capacity; i++) if (liveMatch(store, i, glob)) slots.push(i)
  replyKeys(c, slots)
}

/** SCAN cursor [MATCH pattern] [COUNT n] [TYPE type] (see scan.ts for the cursor's guarantee). */
function scan (c: Ctx): void {
  const cursor = c.int(1)
  if (cursor === null || cursor < 0n) { c.out.error('ERR invalid cursor'); return }
  let count = 10
  let glob: Glob | null = null
  let type = -1
  for (let i = 2; i < c.argc; i++) {
    if (c.is(i, 'match') && i + 1 < c.argc) { glob = pattern(c, i + 1); i++ } else if (c.is(i, 'count') && i + 1 < c.argc) {
      const n = c.num(i + 1)
      if (n === null) { c.out.error(NOT_INT); return }
      if (n < 1) { c.out.error(SYNTAX); return }
      count = n
      i++
    } else if (c.is(i, 'type') && i + 1 < c.argc) {
      // An unknown type name matches nothing (Redis 7.2; 8.0 will make it an error).
      type = TYPE_NAMES.indexOf(c.str(i + 1).toLowerCase())
      if (type < 0) type = 256
      i++
    } else { c.out.error(SYNTAX); return }
  }
  const store = c.store
  const slots: number[] = []
  const next = scanBuckets(store, Number(cursor & 0xffffffffn), count, (i) => {
    if (!liveMatch(store, i, glob) || (type >= 0 && store.typeOf() !== type)) return false
    slots.push(i)
    return true
  })
  c.out.arrayHeader(2)
  c.out.bulkString(String(next))
  replyKeys(c, slots)
}

function randomkey (c: Ctx): void {
  const store = c.store
  const cap = store.index.capacity
  if (store.size === 0) { c.out.nil(); return }
  // A few random slots, then a walk from a random one: bounded even if every key has expired.
  for (let tries = 0; tries < 64; tries++) {
    const i = Math.floor(Math.random() * cap)
    if (liveMatch(store, i, null)) { replyKeys(c, [i], false); return }
  }
  const from = Math.floor(Math.random() * cap)
  for (let k = 0; k < cap; k++) {
    const i = (from + k) % cap
    if (liveMatch(store, i, null)) { replyKeys(c, [i], false); return }
  }
  c.out.nil()
}

function touch (c: Ctx): void {
  let n = 0
  for (let i = 1; i < c.argc; i++) if (c.store.find(c.buf, c.s(i), c.e(i)) >= 0) n++
  c.out.int(n)
}

/** FLUSHALL: every database. */
function flush (c: Ctx): void {
  for (let i = 1; i < c.argc; i++) {
    if (!c.is(i, 'async') && !c.is(i, 'sync')) { c.out.error(SYNTAX); return }
  }
  c.server.flush()
  c.out.ok()
}

const ro = ['readonly']
export const keyCommands: Command[] = [
  { name: 'del', arity: -2, flags: ['write'], keys: [1, -1, 1], run: del },
  { name: 'unlink', arity: -2, flags: ['write', 'fast'], keys: [1, -1, 1], run: del },
  { name: 'exists', arity: -2, flags: [...ro, 'fast'], keys: [1, -1, 1], run: exists },
  { name: 'type', arity: 2, flags: [...ro, 'fast'], keys: [1, 1, 1], run: type },
  { name: 'randomkey', arity: 1, flags: ['readonly'], keys: [0, 0, 0], run: randomkey },
  { name: 'touch', arity: -2, flags: ['readonly', 'fast'], keys: [1, -1, 1], run: touch },
  { name: 'keys', arity: 2, flags: ro, keys: [0, 0, 0], run: keys },
  { name: 'scan', arity: -2, flags: ro, keys: [0, 0, 0], run: scan },
  { name: 'dbsize', arity: 1, flags: [...ro, 'fast'], keys: [0, 0, 0], run: (c) => c.out.int(c.store.size) },
  { name: 'flushall', arity: -1, flags: ['write'], keys: [0, 0, 0], run: flush }
]
