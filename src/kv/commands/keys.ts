/** Keyspace commands: DEL, EXISTS, TYPE, KEYS, SCAN, DBSIZE, FLUSHDB, FLUSHALL, SELECT. */
import { Glob } from '../glob.ts'
import type { Store } from '../store.ts'
import { TYPE_NAMES } from '../segments.ts'
import { SYNTAX, NOT_INT, type Ctx } from './context.ts'
import type { Command } from './types.ts'

function del (c: Ctx): void {
  let n = 0
  for (let i = 1; i < c.argc; i++) {
    const slot = c.store.find(c.buf, c.s(i), c.e(i))
    if (slot >= 0) { c.store.removeAt(slot); n++ }
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

function replyKeys (c: Ctx, slots: number[]): void {
  c.out.arrayHeader(slots.length)
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

function scan (c: Ctx): void {
  const cursor = c.num(1)
  if (cursor === null || cursor < 0) { c.out.error('ERR invalid cursor'); return }
  let count = 10
  let glob: Glob | null = null
  for (let i = 2; i < c.argc; i++) {
    if (c.is(i, 'match') && i + 1 < c.argc) { glob = pattern(c, i + 1); i++ } else if (c.is(i, 'count') && i + 1 < c.argc) {
      const n = c.num(i + 1)
      if (n === null) { c.out.error(NOT_INT); return }
      if (n < 1) { c.out.error(SYNTAX); return }
      count = n
      i++
    } else if (c.is(i, 'type') && i + 1 < c.argc) {
      if (!c.is(i + 1, 'string')) count = 0
      i++
    } else { c.out.error(SYNTAX); return }
  }
  const store = c.store
  const cap = store.index.capacity
  const slots: number[] = []
  let i = cursor
  let visited = 0
  for (; i < cap && visited < count; i++) {
    if (store.index.t[i << 2] === 0) continue
    visited++
    if (liveMatch(store, i, glob)) slots.push(i)
  }
  if (count === 0) i = cap
  c.out.arrayHeader(2)
  c.out.bulkString(i >= cap ? '0' : String(i))
  replyKeys(c, slots)
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
  { name: 'keys', arity: 2, flags: ro, keys: [0, 0, 0], run: keys },
  { name: 'scan', arity: -2, flags: ro, keys: [0, 0, 0], run: scan },
  { name: 'dbsize', arity: 1, flags: [...ro, 'fast'], keys: [0, 0, 0], run: (c) => c.out.int(c.store.size) },
  { name: 'flushall', arity: -1, flags: ['write'], keys: [0, 0, 0], run: flush }
]
