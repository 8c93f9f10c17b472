/** Set commands. A set is a Dict of SET entries: [u32 len][member]. */
import { SET, keyOf, kArena, kStart, kEnd, type Dict } from '../types/dict.ts'
import { offOf, type TypeHeap } from '../types/heap.ts'
import { copyBytes } from '../bytes.ts'
import { open, create, dropIfEmpty, types, hashOf, scanArgs, createKey, T_SET } from '../types/access.ts'
import { NOT_INT, SYNTAX, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { pickRandom } from './hash.ts'
import { NOTIFY_GENERIC, NOTIFY_SET, notify } from '../notify.ts'

const HDR = 3

/** Adds member b[s, e) to set hd; returns 1 if it was new. */
export function addMember (d: Dict, hash: number, hd: number, b: Buffer, s: number, e: number): number {
  if (d.find(hd, SET, hash, b, s, e)) return 0
  const h = d.h
  const ref = h.alloc(4 + (e - s))
  h.u32[ref >>> 23][offOf(ref) >>> 2] = e - s
  copyBytes(h.b[ref >>> 23], offOf(ref) + 4, b, s, e)
  d.insert(hd, hash, ref)
  return 1
}

function replyMember (c: Ctx, h: TypeHeap, ref: number): void {
  keyOf(h, SET, ref)
  c.out.bulk(h.b[kArena], kStart, kEnd)
}

function sadd (c: Ctx): void {
  let hd = open(c, 1, T_SET)
  if (hd < 0) return
  const d = types(c).dict
  if (hd === 0) {
    hd = d.create(HDR)
    if (!create(c, 1, T_SET, hd)) { d.destroy(hd, SET, HDR); return }
  }
  let n = 0
  for (let i = 2; i < c.argc; i++) n += addMember(d, hashOf(c, c.buf, c.s(i), c.e(i)), hd, c.buf, c.s(i), c.e(i))
  c.out.int(n)
  if (n > 0) notify(c, NOTIFY_SET, 'sadd', 1)
}

/** Removes the entry the dict found last from set hd. */
function removeFound (d: Dict, hd: number): void {
  const ref = d.ref
  d.removeSlot(hd, d.slot)
  d.h.release(ref, 4 + d.h.u32[ref >>> 23][offOf(ref) >>> 2])
}

function srem (c: Ctx): void {
  const hd = open(c, 1, T_SET)
  if (hd <= 0) { if (hd === 0) c.out.int(0); return }
  const d = types(c).dict
  let n = 0
  for (let i = 2; i < c.argc; i++) {
    if (!d.find(hd, SET, hashOf(c, c.buf, c.s(i), c.e(i)), c.buf, c.s(i), c.e(i))) continue
    removeFound(d, hd)
    n++
  }
  if (n > 0) notify(c, NOTIFY_SET, 'srem', 1)
  if (d.count(hd) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c, 1, d.count(hd))
  c.out.int(n)
}

function smembers (c: Ctx): void {
  const hd = open(c, 1, T_SET)
  if (hd < 0) return
  if (hd === 0) { c.out.arrayHeader(0); return }
  const d = types(c).dict
  c.out.arrayHeader(d.count(hd))
  const cap = d.cap(hd)
  for (let i = 0; i < cap; i++) if (d.at(hd, i) !== 0) replyMember(c, d.h, d.at(hd, i))
}

function has (c: Ctx, hd: number, i: number): number {
  return hd !== 0 && types(c).dict.find(hd, SET, hashOf(c, c.buf, c.s(i), c.e(i)), c.buf, c.s(i), c.e(i)) ? 1 : 0
}

function sismember (c: Ctx): void {
  const hd = open(c, 1, T_SET)
  if (hd >= 0) c.out.int(has(c, hd, 2))
}

function smismember (c: Ctx): void {
  const hd = open(c, 1, T_SET)
  if (hd < 0) return
  c.out.arrayHeader(c.argc - 2)
  for (let i = 2; i < c.argc; i++) c.out.int(has(c, hd, i))
}

function scard (c: Ctx): void {
  const hd = open(c, 1, T_SET)
  if (hd >= 0) c.out.int(hd === 0 ? 0 : types(c).dict.count(hd))
}

function spop (c: Ctx): void {
  let count = -1
  if (c.argc > 3) { c.out.error(SYNTAX); return }
  if (c.argc === 3) {
    const n = c.num(2)
    if (n === null || n < 0) { c.out.error('ERR value is out of range, must be positive'); return }
    count = n
  }
  const hd = open(c, 1, T_SET)
  if (hd < 0) return
  if (hd === 0) { if (count < 0) c.out.nil(); else c.out.arrayHeader(0); return }
  const d = types(c).dict
  const n = count < 0 ? 1 : Math.min(count, d.count(hd))
  if (count >= 0) c.out.arrayHeader(n)
  for (let i = 0; i < n; i++) {
    const slot = d.randomSlot(hd)
    d.ref = d.at(hd, slot)
    d.slot = slot
    replyMember(c, d.h, d.ref)
    removeFound(d, hd)
  }
  if (n > 0) notify(c, NOTIFY_SET, 'spop', 1)
  if (d.count(hd) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c, 1, d.count(hd))
}

function srandmember (c: Ctx): void {
  const hd = open(c, 1, T_SET)
  if (hd < 0) return
  const d = types(c).dict
  if (c.argc === 2) {
    if (hd === 0) c.out.nil()
    else replyMember(c, d.h, d.at(hd, d.randomSlot(hd)))
    return
  }
  if (c.argc > 3) { c.out.error(SYNTAX); return }
  const count = c.num(2)
  if (count === null || Math.abs(count) > Number.MAX_SAFE_INTEGER / 2) { c.out.error(NOT_INT); return }
  const refs = hd === 0 ? [] : pickRandom(c, hd, count)
  c.out.arrayHeader(refs.length)
  for (const ref of refs) replyMember(c, d.h, ref)
}

function smove (c: Ctx): void {
  const src = open(c, 1, T_SET)
  if (src < 0) return
  const dst = open(c, 2, T_SET)
  if (dst < 0) return
  const d = types(c).dict
  const s = c.s(3); const e = c.e(3)
  const hash = hashOf(c, c.buf, s, e)
  if (src === 0 || !d.find(src, SET, hash, c.buf, s, e)) { c.out.int(0); return }
  if (src === dst) { c.out.int(1); return }
  removeFound(d, src)
  notify(c, NOTIFY_SET, 'srem', 1)
  if (d.count(src) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c, 1, d.count(src))
  let to = open(c, 2, T_SET)
  if (to === 0) {
    to = d.create(HDR)
    if (!create(c, 2, T_SET, to)) { d.destroy(to, SET, HDR); return }
  }
  if (addMember(d, hash, to, c.buf, s, e) !== 0) notify(c, NOTIFY_SET, 'sadd', 2)
  c.out.int(1)
}

/** The headers of arguments [from, to) as sets (0 for missing); null after replying WRONGTYPE. */
function openAll (c: Ctx, from: number, to: number): number[] | null {
  const out: number[] = []
  for (let i = from; i < to; i++) {
    const hd = open(c, i, T_SET)
    if (hd < 0) return null
    out.push(hd)
  }
  return out
}

/** Builds the intersection (0), union (1) or difference (2) of `sets` as a new set; returns its header. */
function combine (c: Ctx, sets: number[], op: number, limit = 0): number {
  const d = types(c).dict
  const h = d.h
  const out = d.create(HDR)
  const order = op === 0 ? sets.slice().sort((a, b) => (a === 0 ? 0 : d.count(a)) - (b === 0 ? 0 : d.count(b))) : sets
  if (op === 0 && order.some((x) => x === 0)) return out
  for (let k = 0; k < (op === 1 ? order.length : 1); k++) {
    const hd = order[k]
    if (hd === 0) continue
    const cap = d.cap(hd)
    for (let i = 0; i < cap; i++) {
      const ref = d.at(hd, i)
      if (ref === 0) continue
      keyOf(h, SET, ref)
      const b = h.b[kArena]; const s = kStart; const e = kEnd
      const hash = hashOf(c, b, s, e)
      if (op !== 1 && !keepMember(d, order, op, hash, b, s, e)) continue
      addMember(d, hash, out, b, s, e)
      if (limit > 0 && d.count(out) >= limit) return out
    }
  }
  return out
}

/** Whether a member of sets[0] belongs in the intersection (op 0) or difference (op 2) of `sets`. */
function keepMember (d: Dict, sets: number[], op: number, hash: number, b: Buffer, s: number, e: number): boolean {
  for (let k = 1; k < sets.length; k++) {
    const other = sets[k]
    const found = other !== 0 && d.find(other, SET, hash, b, s, e)
    if (op === 0 && !found) return false
    if (op === 2 && found) return false
  }
  return true
}

function replyAndFree (c: Ctx, hd: number): void {
  const d = types(c).dict
  c.out.arrayHeader(d.count(hd))
  const cap = d.cap(hd)
  for (let i = 0; i < cap; i++) if (d.at(hd, i) !== 0) replyMember(c, d.h, d.at(hd, i))
  d.destroy(hd, SET, HDR)
}

function setop (c: Ctx, op: number): void {
  const sets = openAll(c, 1, c.argc)
  if (sets !== null) replyAndFree(c, combine(c, sets, op))
}

function setopStore (c: Ctx, op: number): void {
  const sets = openAll(c, 2, c.argc)
  if (sets === null) return
  const out = combine(c, sets, op)
  const d = types(c).dict
  const n = d.count(out)
  const at = c.store.find(c.buf, c.s(1), c.e(1))
  if (at >= 0) c.store.removeAt(at)
  if (n === 0) { d.destroy(out, SET, HDR); c.out.int(0); if (at >= 0) notify(c, NOTIFY_GENERIC, 'del', 1); return }
  if (!createKey(c.store, c.buf, c.s(1), c.e(1), T_SET, out, c.store.find(c.buf, c.s(1), c.e(1)), c)) { d.destroy(out, SET, HDR); return }
  c.out.int(n)
  notify(c, NOTIFY_SET, ['sinterstore', 'sunionstore', 'sdiffstore'][op], 1)
}

function sintercard (c: Ctx): void {
  const numkeys = c.num(1)
  if (numkeys === null || numkeys <= 0) { c.out.error('ERR numkeys should be greater than 0'); return }
  if (numkeys > c.argc - 2) { c.out.error("ERR Number of keys can't be greater than number of args"); return }
  let limit = 0
  for (let i = 2 + numkeys; i < c.argc; i += 2) {
    const n = i + 1 < c.argc && c.is(i, 'limit') ? c.num(i + 1) : null
    if (!c.is(i, 'limit') || i + 1 >= c.argc) { c.out.error(SYNTAX); return }
    if (n === null || n < 0) { c.out.error("ERR LIMIT can't be negative"); return }
    limit = n
  }
  const sets = openAll(c, 2, 2 + numkeys)
  if (sets === null) return
  const out = combine(c, sets, 0, limit)
  const d = types(c).dict
  c.out.int(d.count(out))
  d.destroy(out, SET, HDR)
}

function sscan (c: Ctx): void {
  const o = scanArgs(c, 2)
  if (o === null) return
  const hd = open(c, 1, T_SET)
  if (hd < 0) return
  const refs: number[] = []
  let cursor = 0
  if (hd !== 0) {
    const d = types(c).dict
    cursor = o.cursor
    let steps = 0
    do {
      cursor = d.scanStep(hd, cursor, (ref) => {
        keyOf(d.h, SET, ref)
        if (o.glob === null || o.glob.matches(d.h.b[kArena], kStart, kEnd)) refs.push(ref)
      })
    } while (cursor !== 0 && ++steps < o.count)
  }
  c.out.arrayHeader(2)
  c.out.bulkString(String(cursor))
  c.out.arrayHeader(refs.length)
  for (const ref of refs) replyMember(c, types(c).heap, ref)
}


const w = ['write', 'denyoom', 'fast']
const r = ['readonly', 'fast']
export const setCommands: Command[] = [
  { name: 'sadd', arity: -3, flags: w, keys: [1, 1, 1], run: sadd },
  { name: 'srem', arity: -3, flags: ['write', 'fast'], keys: [1, 1, 1], run: srem },
  { name: 'smembers', arity: 2, flags: ['readonly'], keys: [1, 1, 1], run: smembers },
  { name: 'sismember', arity: 3, flags: r, keys: [1, 1, 1], run: sismember },
  { name: 'smismember', arity: -3, flags: r, keys: [1, 1, 1], run: smismember },
  { name: 'scard', arity: 2, flags: r, keys: [1, 1, 1], run: scard },
  { name: 'spop', arity: -2, flags: ['write', 'random', 'fast'], keys: [1, 1, 1], run: spop },
  { name: 'srandmember', arity: -2, flags: ['readonly', 'random'], keys: [1, 1, 1], run: srandmember },
  { name: 'smove', arity: 4, flags: w, keys: [1, 2, 1], run: smove },
  { name: 'sinter', arity: -2, flags: ['readonly'], keys: [1, -1, 1], run: (c) => setop(c, 0) },
  { name: 'sunion', arity: -2, flags: ['readonly'], keys: [1, -1, 1], run: (c) => setop(c, 1) },
  { name: 'sdiff', arity: -2, flags: ['readonly'], keys: [1, -1, 1], run: (c) => setop(c, 2) },
  { name: 'sinterstore', arity: -3, flags: ['write', 'denyoom'], keys: [1, -1, 1], run: (c) => setopStore(c, 0) },
  { name: 'sunionstore', arity: -3, flags: ['write', 'denyoom'], keys: [1, -1, 1], run: (c) => setopStore(c, 1) },
  { name: 'sdiffstore', arity: -3, flags: ['write', 'denyoom'], keys: [1, -1, 1], run: (c) => setopStore(c, 2) },
  { name: 'sintercard', arity: -3, flags: ['readonly'], keys: [0, 0, 0], run: sintercard },
  { name: 'sscan', arity: -3, flags: ['readonly'], keys: [1, 1, 1], run: sscan }
]
