/** List commands, and the pop/push functions blocking commands (kv-conn) call. */
import type { Store } from '../store.ts'
import { Lists, eA, eS, eE, pNode, pOff } from '../types/list.ts'
import { equal } from '../types/dict.ts'
import { offOf } from '../types/heap.ts'
import { typesOf } from '../types/registry.ts'
import { open, create, createKey, tagOf, refOf, isHeapRecord, types, T_LIST, WRONGTYPE } from '../types/access.ts'
import { NOT_INT, SYNTAX, WRONG_ARGS, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { NOTIFY_GENERIC, NOTIFY_LIST, notify, notifying } from '../notify.ts'

/** A copy of an element that must outlive its node (LMOVE, pops for blocked clients). */
let scratch = Buffer.alloc(256)
function keep (l: Lists): number {
  const len = eE - eS
  if (len > scratch.length) scratch = Buffer.alloc(Math.max(len, scratch.length * 2))
  l.h.b[eA].copy(scratch, 0, eS, eE)
  return len
}

function lists (c: Ctx): Lists { return types(c).lists }

function push (c: Ctx, left: boolean, onlyIfExists: boolean): void {
  let hd = open(c, 1, T_LIST)
  if (hd < 0) return
  if (hd === 0) {
    if (onlyIfExists) { c.out.int(0); return }
    hd = lists(c).create()
    if (!create(c, 1, T_LIST, hd)) { lists(c).destroy(hd); return }
  }
  const l = lists(c)
  for (let i = 2; i < c.argc; i++) l.push(hd, left, c.buf, c.s(i), c.e(i))
  c.out.int(l.count(hd))
  notify(c, NOTIFY_LIST, left ? 'lpush' : 'rpush', 1)
}

/** Removes argument i's key when its list is empty. */
function dropIfEmpty (store: Store, b: Buffer, s: number, e: number, hd: number): void {
  if (typesOf(store).lists.count(hd) !== 0) return
  const at = store.find(b, s, e)
  if (at >= 0) store.removeAt(at)
}

function pop (c: Ctx, left: boolean): void {
  let count = -1
  if (c.argc > 3) { c.out.error(WRONG_ARGS(left ? 'lpop' : 'rpop')); return }
  if (c.argc === 3) {
    const n = c.num(2)
    if (n === null || n < 0) { c.out.error('ERR value is out of range, must be positive'); return }
    count = n
  }
  const hd = open(c, 1, T_LIST)
  if (hd < 0) return
  if (hd === 0) { if (count < 0) c.out.nil(); else c.out.nilArray(); return }
  const l = lists(c)
  const n = count < 0 ? 1 : Math.min(count, l.count(hd))
  if (count >= 0) c.out.arrayHeader(n)
  for (let i = 0; i < n; i++) {
    l.at(hd, left ? 0 : l.count(hd) - 1)
    c.out.bulk(l.h.b[eA], eS, eE)
    l.removeAt(hd, pNode, pOff)
  }
  if (n > 0) notify(c, NOTIFY_LIST, left ? 'lpop' : 'rpop', 1)
  if (l.count(hd) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c.store, c.buf, c.s(1), c.e(1), hd)
}

/** Pops one element from the list at key `b[s, e)` into a Buffer, or null (no such list). For kv-conn's blocking pops. */
export function listPop (store: Store, b: Buffer, s: number, e: number, left: boolean): Buffer | null {
  if (store.find(b, s, e) < 0 || tagOf(store) !== T_LIST || !isHeapRecord(store.seg, store.off)) return null
  const hd = refOf(store)
  const l = typesOf(store).lists
  l.at(hd, left ? 0 : l.count(hd) - 1)
  const out = Buffer.from(l.h.b[eA].subarray(eS, eE))
  l.removeAt(hd, pNode, pOff)
  dropIfEmpty(store, b, s, e, hd)
  return out
}

/** Pushes `v[vs, ve)` on the list at key `b[s, e)` (made if absent); returns its new length, or an error text (WRONGTYPE, OOM). */
export function listPush (store: Store, b: Buffer, s: number, e: number, left: boolean, v: Buffer, vs: number, ve: number): number | string {
  const at = store.find(b, s, e)
  const l = typesOf(store).lists
  let hd: number
  if (at >= 0) {
    if (tagOf(store) !== T_LIST || !isHeapRecord(store.seg, store.off)) return WRONGTYPE
    hd = refOf(store)
  } else {
    hd = l.create()
    if (!createKey(store, b, s, e, T_LIST, hd, at)) { l.destroy(hd); return "OOM command not allowed when used memory > 'maxmemory'." }
  }
  l.push(hd, left, v, vs, ve)
  return l.count(hd)
}

/** The element count of the list at key `b[s, e)`: 0 if absent, -1 if another type. */
export function listLength (store: Store, b: Buffer, s: number, e: number): number {
  if (store.find(b, s, e) < 0) return 0
  if (tagOf(store) !== T_LIST) return -1
  return typesOf(store).lists.count(refOf(store))
}

function llen (c: Ctx): void {
  const hd = open(c, 1, T_LIST)
  if (hd >= 0) c.out.int(hd === 0 ? 0 : lists(c).count(hd))
}

/** Normalizes [start, stop] against `len`; returns false if the range is empty. */
let rS = 0; let rE = 0
function range (start: number, stop: number, len: number): boolean {
  if (start < 0) start = Math.max(0, len + start)
  if (stop < 0) stop = len + stop
  if (stop >= len) stop = len - 1
  rS = start; rE = stop
  return start <= stop && start < len
}

function lrange (c: Ctx): void {
  const start = c.num(2); const stop = c.num(3)
  if (start === null || stop === null) { c.out.error(NOT_INT); return }
  const hd = open(c, 1, T_LIST)
  if (hd < 0) return
  const l = lists(c)
  if (hd === 0 || !range(start, stop, l.count(hd))) { c.out.arrayHeader(0); return }
  c.out.arrayHeader(rE - rS + 1)
  l.replyRange(hd, rS, rE - rS + 1, c.out)
}

function lindex (c: Ctx): void {
  const i = c.num(2)
  if (i === null) { c.out.error(NOT_INT); return }
  const hd = open(c, 1, T_LIST)
  if (hd < 0) return
  const l = lists(c)
  const n = hd === 0 ? 0 : l.count(hd)
  const k = i < 0 ? n + i : i
  if (k < 0 || k >= n) { c.out.nil(); return }
  l.at(hd, k)
  c.out.bulk(l.h.b[eA], eS, eE)
}

function lset (c: Ctx): void {
  const i = c.num(2)
  if (i === null) { c.out.error(NOT_INT); return }
  const hd = open(c, 1, T_LIST)
  if (hd < 0) return
  if (hd === 0) { c.out.error('ERR no such key'); return }
  const l = lists(c)
  const n = l.count(hd)
  const k = i < 0 ? n + i : i
  if (k < 0 || k >= n) { c.out.error('ERR index out of range'); return }
  l.at(hd, k)
  const node = pNode; const off = pOff
  l.removeAt(hd, node, off)
  if (l.count(hd) === 0) l.push(hd, true, c.buf, c.s(3), c.e(3))
  else if (k === l.count(hd)) l.push(hd, false, c.buf, c.s(3), c.e(3))
  else { l.at(hd, k); l.insertAt(hd, pNode, pOff, c.buf, c.s(3), c.e(3)) }
  c.out.ok()
  notify(c, NOTIFY_LIST, 'lset', 1)
}

/** True if the current element equals argument i. */
function matches (c: Ctx, l: Lists, i: number): boolean {
  return eE - eS === c.e(i) - c.s(i) && equal(l.h.b[eA], eS, c.buf, c.s(i), eE - eS)
}

/** Indexes of the elements equal to argument i, in order. */
function matchIndexes (c: Ctx, l: Lists, hd: number, i: number): number[] {
  const out: number[] = []
  l.at(hd, 0)
  let k = 0
  do { if (matches(c, l, i)) out.push(k); k++ } while (l.next())
  return out
}

function lrem (c: Ctx): void {
  const count = c.num(2)
  if (count === null) { c.out.error(NOT_INT); return }
  const hd = open(c, 1, T_LIST)
  if (hd <= 0) { if (hd === 0) c.out.int(0); return }
  const l = lists(c)
  let idx = matchIndexes(c, l, hd, 3)
  if (count > 0) idx = idx.slice(0, count)
  else if (count < 0) idx = idx.slice(Math.max(0, idx.length + count))
  for (let j = idx.length - 1; j >= 0; j--) { l.at(hd, idx[j]); l.removeAt(hd, pNode, pOff) }
  if (idx.length > 0) notify(c, NOTIFY_LIST, 'lrem', 1)
  if (l.count(hd) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c.store, c.buf, c.s(1), c.e(1), hd)
  c.out.int(idx.length)
}

function ltrim (c: Ctx): void {
  const start = c.num(2); const stop = c.num(3)
  if (start === null || stop === null) { c.out.error(NOT_INT); return }
  const hd = open(c, 1, T_LIST)
  if (hd <= 0) { if (hd === 0) c.out.ok(); return }
  const l = lists(c)
  const n = l.count(hd)
  const keepAny = range(start, stop, n)
  const fromHead = keepAny ? rS : n
  const fromTail = keepAny ? n - 1 - rE : 0
  for (let i = 0; i < fromHead; i++) l.removeEnd(hd, true)
  for (let i = 0; i < fromTail; i++) l.removeEnd(hd, false)
  notify(c, NOTIFY_LIST, 'ltrim', 1)
  if (l.count(hd) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c.store, c.buf, c.s(1), c.e(1), hd)
  c.out.ok()
}

function linsert (c: Ctx): void {
  const before = c.is(2, 'before')
  if (!before && !c.is(2, 'after')) { c.out.error(SYNTAX); return }
  const hd = open(c, 1, T_LIST)
  if (hd <= 0) { if (hd === 0) c.out.int(0); return }
  const l = lists(c)
  l.at(hd, 0)
  do {
    if (!matches(c, l, 3)) continue
    l.insertAt(hd, pNode, before ? pOff : eE - offOf(pNode) - 20, c.buf, c.s(4), c.e(4))
    c.out.int(l.count(hd))
    notify(c, NOTIFY_LIST, 'linsert', 1)
    return
  } while (l.next())
  c.out.int(-1)
}

interface LposOptions { rank: number, count: number, maxlen: number }

function lposOptions (c: Ctx): LposOptions | null {
  const o: LposOptions = { rank: 1, count: -1, maxlen: 0 }
  for (let i = 3; i < c.argc; i += 2) {
    if (i + 1 >= c.argc) { c.out.error(SYNTAX); return null }
    const big = c.int(i + 1)
    if (big === null) { c.out.error(NOT_INT); return null }
    // Beyond 2^53 a rank, count or maxlen means "all" anyway: clamp rather than refuse (Redis takes any long).
    const n = Number(big < -(2n ** 53n) ? -(2n ** 53n) : big > 2n ** 53n ? 2n ** 53n : big)
    if (c.is(i, 'rank')) {
      // Redis 7.2 takes -LONG_MAX..LONG_MAX, so that the rank can be negated.
      if (big === -(2n ** 63n)) { c.out.error('ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807'); return null }
      if (n === 0) { c.out.error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"); return null }
      o.rank = n
    } else if (c.is(i, 'count')) {
      if (n < 0) { c.out.error("ERR COUNT can't be negative"); return null }
      o.count = n
    } else if (c.is(i, 'maxlen')) {
      if (n < 0) { c.out.error("ERR MAXLEN can't be negative"); return null }
      o.maxlen = n
    } else { c.out.error(SYNTAX); return null }
  }
  return o
}

function lpos (c: Ctx): void {
  const o = lposOptions(c)
  if (o === null) return
  const hd = open(c, 1, T_LIST)
  if (hd < 0) return
  const found: number[] = []
  const want = o.count === 0 ? Infinity : o.count < 0 ? 1 : o.count
  if (hd !== 0) {
    const l = lists(c)
    const n = l.count(hd)
    const back = o.rank < 0
    let skip = Math.abs(o.rank) - 1
    l.at(hd, back ? n - 1 : 0)
    for (let k = 0; found.length < want && (o.maxlen === 0 || k < o.maxlen); k++) {
      if (matches(c, l, 2) && skip-- <= 0) found.push(back ? n - 1 - k : k)
      if (!(back ? l.prev() : l.next())) break
    }
  }
  if (o.count < 0) {
    if (found.length === 0) c.out.nil()
    else c.out.int(found[0])
    return
  }
  c.out.arrayHeader(found.length)
  for (const k of found) c.out.int(k)
}

/** LMOVE's core: pops from src's end and pushes on dst's; false if src is empty. Replies nothing. */
function move (c: Ctx, src: number, dst: number, fromLeft: boolean, toLeft: boolean): void {
  const shd = open(c, src, T_LIST)
  if (shd < 0) return
  if (shd === 0) { c.out.nil(); return }
  const l = lists(c)
  const store = c.store
  const at = store.find(c.buf, c.s(dst), c.e(dst))
  if (at >= 0 && tagOf(store) !== T_LIST) { c.out.error(WRONGTYPE); return }
  l.at(shd, fromLeft ? 0 : l.count(shd) - 1)
  const len = keep(l)
  l.removeAt(shd, pNode, pOff)
  dropIfEmpty(store, c.buf, c.s(src), c.e(src), shd)
  const r = listPush(store, c.buf, c.s(dst), c.e(dst), toLeft, scratch, 0, len)
  if (typeof r === 'string') { c.out.error(r); return }
  c.out.bulk(scratch, 0, len)
  if (notifying()) notifyMove(c, src, dst, fromLeft, toLeft)
}

/** LMOVE's events, in Redis's order: the push on the destination, the pop from the source, its deletion. */
function notifyMove (c: Ctx, src: number, dst: number, fromLeft: boolean, toLeft: boolean): void {
  notify(c, NOTIFY_LIST, toLeft ? 'lpush' : 'rpush', dst)
  notify(c, NOTIFY_LIST, fromLeft ? 'lpop' : 'rpop', src)
  if (listLength(c.store, c.buf, c.s(src), c.e(src)) === 0) notify(c, NOTIFY_GENERIC, 'del', src)
}

/** LEFT -> true, RIGHT -> false, anything else null. */
function side (c: Ctx, i: number): boolean | null {
  return c.is(i, 'left') ? true : c.is(i, 'right') ? false : null
}

function lmove (c: Ctx): void {
  const from = side(c, 3); const to = side(c, 4)
  if (from === null || to === null) { c.out.error(SYNTAX); return }
  move(c, 1, 2, from, to)
}

const w = ['write', 'denyoom', 'fast']
export const listCommands: Command[] = [
  { name: 'lpush', arity: -3, flags: w, keys: [1, 1, 1], run: (c) => push(c, true, false) },
  { name: 'rpush', arity: -3, flags: w, keys: [1, 1, 1], run: (c) => push(c, false, false) },
  { name: 'lpushx', arity: -3, flags: w, keys: [1, 1, 1], run: (c) => push(c, true, true) },
  { name: 'rpushx', arity: -3, flags: w, keys: [1, 1, 1], run: (c) => push(c, false, true) },
  { name: 'lpop', arity: -2, flags: ['write', 'fast'], keys: [1, 1, 1], run: (c) => pop(c, true) },
  { name: 'rpop', arity: -2, flags: ['write', 'fast'], keys: [1, 1, 1], run: (c) => pop(c, false) },
  { name: 'llen', arity: 2, flags: ['readonly', 'fast'], keys: [1, 1, 1], run: llen },
  { name: 'lrange', arity: 4, flags: ['readonly'], keys: [1, 1, 1], run: lrange },
  { name: 'lindex', arity: 3, flags: ['readonly'], keys: [1, 1, 1], run: lindex },
  { name: 'lset', arity: 4, flags: ['write', 'denyoom'], keys: [1, 1, 1], run: lset },
  { name: 'lrem', arity: 4, flags: ['write'], keys: [1, 1, 1], run: lrem },
  { name: 'ltrim', arity: 4, flags: ['write'], keys: [1, 1, 1], run: ltrim },
  { name: 'linsert', arity: 5, flags: ['write', 'denyoom'], keys: [1, 1, 1], run: linsert },
  { name: 'lpos', arity: -3, flags: ['readonly'], keys: [1, 1, 1], run: lpos },
  { name: 'lmove', arity: 5, flags: ['write', 'denyoom'], keys: [1, 2, 1], run: lmove },
  { name: 'rpoplpush', arity: 3, flags: ['write', 'denyoom'], keys: [1, 2, 1], run: (c) => move(c, 1, 2, false, true) }
]
