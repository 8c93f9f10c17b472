/**
 * SORT and SORT_RO, as cluster-less Redis 7.2 runs them: BY (a pattern, a hash field `->`, or a
 * constant such as `nosort` to keep the stored order), GET (`#`, patterns, `->`), LIMIT, ASC/DESC,
 * ALPHA and STORE, over lists, sets and sorted sets. The elements are copied into a JS array while
 * the command runs (the sort needs them side by side); what STORE keeps is a list in the heap.
 *
 * ALPHA compares bytes: Redis's strcoll in the C/C.UTF-8 locale, which is what Debian's redis-server
 * runs under by default, orders valid UTF-8 the same way.
 */
import { sessionOf, hubOf, keyId } from '../session.ts'
import { HASH, SET, keyOf, kArena, kStart, kEnd } from '../types/dict.ts'
import { offOf } from '../types/heap.ts'
import { eA, eS, eE } from '../types/list.ts'
import { mA, mS, mE, type ZSets } from '../types/zset.ts'
import { open, types, tagOf, refOf, hashOf, createKey, isHeapRecord, T_LIST, T_SET, T_ZSET, T_HASH } from '../types/access.ts'
import { NOT_INT, SYNTAX, WRONGTYPE, type Ctx } from './context.ts'
import { sortWeight } from './strtod.ts'
import type { Command } from './types.ts'
import { notify, NOTIFY_GENERIC, NOTIFY_LIST } from '../notify.ts'

interface Spec {
  desc: boolean
  alpha: boolean
  limitStart: number
  limitCount: number
  /** The BY pattern, null without BY; `dontsort` when it has no `*`. */
  by: Buffer | null
  dontsort: boolean
  gets: Buffer[]
  /** Argument index of the STORE key, -1 without STORE. */
  store: number
}

/** Redis's `long` LIMIT arguments: any 64-bit value, clamped later to the element count anyway. */
function limitArg (c: Ctx, i: number): number | null {
  const v = c.int(i)
  if (v === null) return null
  const cap = 2n ** 53n
  return Number(v > cap ? cap : v < -cap ? -cap : v)
}

/** Parses the options from argument 2 on, as Redis does (later words win); null after replying an error. */
function parse (c: Ctx, readonly: boolean): Spec | null {
  const o: Spec = { desc: false, alpha: false, limitStart: 0, limitCount: -1, by: null, dontsort: false, gets: [], store: -1 }
  for (let j = 2; j < c.argc; j++) {
    const left = c.argc - j - 1
    if (c.is(j, 'asc')) o.desc = false
    else if (c.is(j, 'desc')) o.desc = true
    else if (c.is(j, 'alpha')) o.alpha = true
    else if (c.is(j, 'limit') && left >= 2) {
      const start = limitArg(c, j + 1)
      const count = start === null ? null : limitArg(c, j + 2)
      if (start === null || count === null) { c.out.error(NOT_INT); return null }
      o.limitStart = start
      o.limitCount = count
      j += 2
    } else if (!readonly && c.is(j, 'store') && left >= 1) {
      o.store = ++j
    } else if (c.is(j, 'by') && left >= 1) {
      o.by = c.copy(++j)
      o.dontsort = !o.by.includes(42)
    } else if (c.is(j, 'get') && left >= 1) {
      o.gets.push(c.copy(++j))
    } else { c.out.error(SYNTAX); return null }
  }
  return o
}

/**
 * The value a BY or GET pattern names for element `el`: `#` is the element itself; otherwise the
 * first `*` becomes the element and the key must hold a string, or with `->field` a hash with that
 * field. A pattern with no `*` names nothing. Returns a copy, or null.
 */
function lookup (c: Ctx, pat: Buffer, el: Buffer): Buffer | null {
  if (pat.length === 1 && pat[0] === 35) return el
  const star = pat.indexOf(42)
  if (star < 0) return null
  const arrow = pat.indexOf('->', star + 1)
  const hasField = arrow >= 0 && arrow + 2 < pat.length
  const key = Buffer.concat([pat.subarray(0, star), el, pat.subarray(star + 1, hasField ? arrow : pat.length)])
  const store = c.store
  if (store.find(key, 0, key.length) < 0) return null
  if (!hasField) {
    if (store.typeOf() !== 0) return null
    const vs = store.seg.valStart(store.off)
    return Buffer.from(store.seg.bytes.subarray(vs, vs + store.seg.valLen(store.off)))
  }
  if (tagOf(store) !== T_HASH || !isHeapRecord(store.seg, store.off)) return null
  const d = types(c).dict
  const hd = refOf(store)
  if (!d.find(hd, HASH, hashOf(c, pat, arrow + 2, pat.length), pat, arrow + 2, pat.length)) return null
  const u = d.h.u32[d.ref >>> 23]
  const o = offOf(d.ref)
  const vs = o + 8 + u[o >>> 2]
  return Buffer.from(d.h.b[d.ref >>> 23].subarray(vs, vs + u[(o >>> 2) + 1]))
}

/** The elements of the key to sort: all of them, or with `range` only [start, end] in stored order (DESC: from the end). */
function load (c: Ctx, type: number, hd: number, range: [number, number] | null, desc: boolean): Buffer[] {
  const out: Buffer[] = []
  if (hd === 0) return out
  const t = types(c)
  if (type === T_LIST) {
    const l = t.lists
    const n = l.count(hd)
    const [from, to] = range ?? [0, n - 1]
    if (to < from) return out
    l.at(hd, desc ? n - 1 - from : from)
    do out.push(Buffer.from(l.h.b[eA].subarray(eS, eE))); while (out.length <= to - from && (desc ? l.prev() : l.next()))
  } else if (type === T_ZSET) {
    loadZset(t.zsets, hd, range, desc, out)
  } else {
    const d = t.dict
    const cap = d.cap(hd)
    for (let i = 0; i < cap; i++) {
      const ref = d.at(hd, i)
      if (ref === 0) continue
      keyOf(d.h, SET, ref)
      out.push(Buffer.from(d.h.b[kArena].subarray(kStart, kEnd)))
    }
  }
  return out
}

function loadZset (z: ZSets, hd: number, range: [number, number] | null, desc: boolean, out: Buffer[]): void {
  const n = z.count(hd)
  const [from, to] = range ?? [0, n - 1]
  if (to < from) return
  let x = z.byRank(hd, desc ? n - 1 - from : from)
  for (let i = from; i <= to && x !== 0; i++) {
    z.member(x)
    out.push(Buffer.from(z.h.b[mA].subarray(mS, mE)))
    x = desc ? z.back(x) : z.fwd(x, 0)
  }
}

interface Item { el: Buffer, score: number, cmp: Buffer | null }

/** Sorts `items` as Redis's sortCompare does; false if a weight is not a number. */
function order (c: Ctx, o: Spec, items: Item[]): boolean {
  let bad = false
  for (const it of items) {
    const w = o.by === null ? it.el : lookup(c, o.by, it.el)
    if (w === null) continue
    if (o.alpha) { if (o.by !== null) it.cmp = w; continue }
    it.score = sortWeight(w, 0, w.length)
    if (Number.isNaN(it.score)) bad = true
  }
  if (bad) return false
  const sign = o.desc ? -1 : 1
  items.sort((a, b) => sign * compare(o, a, b))
  return true
}

function compare (o: Spec, a: Item, b: Item): number {
  if (!o.alpha) return a.score > b.score ? 1 : a.score < b.score ? -1 : Buffer.compare(a.el, b.el)
  if (o.by === null) return Buffer.compare(a.el, b.el)
  if (a.cmp === null || b.cmp === null) return a.cmp === b.cmp ? 0 : a.cmp === null ? -1 : 1
  return Buffer.compare(a.cmp, b.cmp)
}

function sort (c: Ctx, readonly: boolean): void {
  const o = parse(c, readonly)
  if (o === null) return
  const type = keyType(c)
  if (type < 0) return
  const hd = type === 0 ? 0 : refOf(c.store)
  // A set has no order of its own: stored, it is sorted (ALPHA) so that the result is repeatable.
  if (o.dontsort && type === T_SET && o.store >= 0) { o.dontsort = false; o.alpha = true; o.by = null }
  const n = hd === 0 ? 0 : type === T_LIST ? types(c).lists.count(hd) : types(c).dict.count(hd)
  let start = Math.min(Math.max(o.limitStart, 0), n)
  const count = Math.min(Math.max(o.limitCount, -1), n)
  let end = count < 0 ? n - 1 : start + count - 1
  if (start >= n) { start = n - 1; end = n - 2 }
  if (end >= n) end = n - 1
  const direct = o.dontsort && type !== T_SET
  const elems = load(c, type, hd, direct ? [start, end] : null, direct && o.desc)
  if (direct) { end -= start; start = 0 }
  const items: Item[] = elems.map((el) => ({ el, score: 0, cmp: null }))
  if (!o.dontsort && !order(c, o, items)) { c.out.error("ERR One or more scores can't be converted into double"); return }
  const picked = items.slice(start, end + 1).map((it) => it.el)
  if (o.store < 0) reply(c, o, picked)
  else store(c, o, picked)
}

/** The type of argument 1's key (0 if absent; else the store's found record is it), or -1 after replying an error. */
function keyType (c: Ctx): number {
  if (c.store.find(c.buf, c.s(1), c.e(1)) < 0) return 0
  const t = tagOf(c.store)
  if (t !== T_LIST && t !== T_SET && t !== T_ZSET) { c.out.error(WRONGTYPE); return -1 }
  return open(c, 1, t) < 0 ? -1 : t
}

function reply (c: Ctx, o: Spec, picked: Buffer[]): void {
  c.out.arrayHeader(o.gets.length === 0 ? picked.length : picked.length * o.gets.length)
  for (const el of picked) {
    if (o.gets.length === 0) c.out.bulk(el, 0, el.length)
    for (const g of o.gets) {
      const v = lookup(c, g, el)
      if (v === null) c.out.nil()
      else c.out.bulk(v, 0, v.length)
    }
  }
}

/** STORE: the result replaces the key as a list (no TTL), or deletes it when empty; replies its length. */
function store (c: Ctx, o: Spec, picked: Buffer[]): void {
  const values: Buffer[] = []
  for (const el of picked) {
    if (o.gets.length === 0) values.push(el)
    for (const g of o.gets) values.push(lookup(c, g, el) ?? Buffer.alloc(0))
  }
  const st = c.store
  const i = o.store
  const at = st.find(c.buf, c.s(i), c.e(i))
  if (values.length === 0) {
    if (at >= 0) { st.removeAt(at); touched(c, i); notify(c, NOTIFY_GENERIC, 'del', i) }
    c.out.int(0)
    return
  }
  const l = types(c).lists
  const hd = l.create()
  for (const v of values) l.push(hd, false, v, 0, v.length)
  if (at >= 0) st.removeAt(at)
  if (!createKey(st, c.buf, c.s(i), c.e(i), T_LIST, hd, st.find(c.buf, c.s(i), c.e(i)), c)) { l.destroy(hd); return }
  touched(c, i)
  notify(c, NOTIFY_LIST, 'sortstore', i)
  c.out.int(values.length)
}

/**
 * A key SORT wrote: WATCH and blocked clients learn of it here, because the command table cannot
 * name it (STORE's key is found by keyword: movablekeys).
 */
function touched (c: Ctx, i: number): void {
  const h = hubOf(c)
  const id = keyId(sessionOf(c).db, c.buf, c.s(i), c.e(i))
  h.watches.touch(id)
  h.blocking.signal(id)
}

export const sortCommands: Command[] = [
  { name: 'sort', arity: -2, flags: ['write', 'denyoom', 'movablekeys'], keys: [1, 1, 1], run: (c) => sort(c, false) },
  { name: 'sort_ro', arity: -2, flags: ['readonly', 'movablekeys'], keys: [1, 1, 1], run: (c) => sort(c, true) }
]
