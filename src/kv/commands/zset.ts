/** Sorted set commands over types/zset.ts (skiplist + member dict in the heap). */
import { ZSets, mA, mS, mE, type ScoreRange, type LexBound } from '../types/zset.ts'
import { open, create, createKey, dropIfEmpty, types, hashOf, scanArgs, formatScore, parseFloatArg, tagOf, refOf, isHeapRecord, WRONGTYPE, T_ZSET } from '../types/access.ts'
import { typesOf } from '../types/registry.ts'
import type { Store } from '../store.ts'
import { NOT_INT, SYNTAX, WRONG_ARGS, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { NOTIFY_GENERIC, NOTIFY_ZSET, notify, notifying } from '../notify.ts'

export const NOT_FLOAT = 'ERR value is not a valid float'

export function zs (c: Ctx): ZSets { return types(c).zsets }

export function replyMember (c: Ctx, z: ZSets, n: number): void {
  z.member(n)
  c.out.bulk(z.h.b[mA], mS, mE)
}
export function replyScore (c: Ctx, score: number): void { if (c.out.resp === 3) c.out.double(score); else c.out.bulkString(formatScore(score)) }

/**
 * Starts a reply of n members, with their scores if `withScores`: interleaved in RESP2; in RESP3
 * as [member, score] pairs, as Redis does. True when each member must open its pair.
 */
export function scoredHeader (c: Ctx, n: number, withScores: boolean): boolean {
  const pairs = withScores && c.out.resp === 3
  c.out.arrayHeader(withScores && !pairs ? 2 * n : n)
  return pairs
}

/** Opens or creates argument i's sorted set; -1 after an error reply. */
function openForWrite (c: Ctx, i: number): number {
  let hd = open(c, i, T_ZSET)
  if (hd !== 0) return hd
  hd = zs(c).create()
  if (!create(c, i, T_ZSET, hd)) { zs(c).destroy(hd); return -1 }
  return hd
}

const NX = 1; const XX = 2; const GT = 4; const LT = 8; const CH = 16; const INCR = 32

/** Outcome of `zaddOne`: 0 nothing, 1 added, 2 updated; `zaddScore` is the member's score after. */
let zaddScore = 0
function zaddOne (c: Ctx, hd: number, score: number, i: number, flags: number): number {
  const z = zs(c)
  const s = c.s(i); const e = c.e(i)
  const hash = hashOf(c, c.buf, s, e)
  const n = z.find(hd, hash, c.buf, s, e)
  if (n !== 0) {
    if ((flags & NX) !== 0) return -1
    const cur = z.score(n)
    if ((flags & INCR) !== 0) {
      score += cur
      if (Number.isNaN(score)) return -2
    }
    zaddScore = score
    if (((flags & GT) !== 0 && score <= cur) || ((flags & LT) !== 0 && score >= cur)) { zaddScore = cur; return -1 }
    if (score === cur) return 0
    z.rescore(hd, n, z.dict.slot, score)
    return 2
  }
  if ((flags & XX) !== 0) return -1
  zaddScore = score
  z.insert(hd, hash, score, c.buf, s, e)
  return 1
}

function zaddFlags (c: Ctx): [number, number] | null {
  let flags = 0
  let i = 2
  for (; i < c.argc; i++) {
    if (c.is(i, 'nx')) flags |= NX
    else if (c.is(i, 'xx')) flags |= XX
    else if (c.is(i, 'gt')) flags |= GT
    else if (c.is(i, 'lt')) flags |= LT
    else if (c.is(i, 'ch')) flags |= CH
    else if (c.is(i, 'incr')) flags |= INCR
    else break
  }
  const pairs = c.argc - i
  if (pairs === 0 || pairs % 2 !== 0) { c.out.error(SYNTAX); return null }
  if ((flags & NX) !== 0 && (flags & XX) !== 0) { c.out.error('ERR XX and NX options at the same time are not compatible'); return null }
  if (((flags & GT) !== 0 && (flags & LT) !== 0) || ((flags & NX) !== 0 && (flags & (GT | LT)) !== 0)) {
    c.out.error('ERR GT, LT, and/or NX options at the same time are not compatible'); return null
  }
  if ((flags & INCR) !== 0 && pairs !== 2) { c.out.error('ERR INCR option supports a single increment-element pair'); return null }
  return [flags, i]
}

function zadd (c: Ctx): void {
  const f = zaddFlags(c)
  if (f === null) return
  const [flags, first] = f
  for (let i = first; i < c.argc; i += 2) {
    if (Number.isNaN(parseFloatArg(c.buf, c.s(i), c.e(i)))) { c.out.error(NOT_FLOAT); return }
  }
  zaddGeneric(c, flags, first)
}

function zaddGeneric (c: Ctx, flags: number, first: number): void {
  const existing = open(c, 1, T_ZSET)
  if (existing < 0) return
  if (existing === 0 && (flags & XX) !== 0) { if ((flags & INCR) !== 0) c.out.nil(); else c.out.int(0); return }
  const hd = openForWrite(c, 1)
  if (hd < 0) return
  let added = 0; let changed = 0
  for (let i = first; i < c.argc; i += 2) {
    const r = zaddOne(c, hd, parseFloatArg(c.buf, c.s(i), c.e(i)), i + 1, flags)
    if (r === -2) { c.out.error('ERR resulting score is not a number (NaN)'); dropIfEmpty(c, 1, zs(c).count(hd)); return }
    if (r === 1) added++
    if (r === 2) changed++
    if ((flags & INCR) !== 0) {
      dropIfEmpty(c, 1, zs(c).count(hd))
      if (r < 0) c.out.nil()
      else replyScore(c, zaddScore)
      if (r > 0) notify(c, NOTIFY_ZSET, 'zincr', 1)
      return
    }
  }
  dropIfEmpty(c, 1, zs(c).count(hd))
  c.out.int((flags & CH) !== 0 ? added + changed : added)
  if (added + changed > 0) notify(c, NOTIFY_ZSET, 'zadd', 1)
}

function zincrby (c: Ctx): void {
  if (Number.isNaN(parseFloatArg(c.buf, c.s(2), c.e(2)))) { c.out.error(NOT_FLOAT); return }
  zaddGeneric(c, INCR, 2)
}

function zrem (c: Ctx): void {
  const hd = open(c, 1, T_ZSET)
  if (hd <= 0) { if (hd === 0) c.out.int(0); return }
  const z = zs(c)
  let n = 0
  for (let i = 2; i < c.argc; i++) {
    const node = z.find(hd, hashOf(c, c.buf, c.s(i), c.e(i)), c.buf, c.s(i), c.e(i))
    if (node === 0) continue
    z.remove(hd, node, z.dict.slot)
    n++
  }
  if (n > 0) notify(c, NOTIFY_ZSET, 'zrem', 1)
  if (z.count(hd) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c, 1, z.count(hd))
  c.out.int(n)
}

function zcard (c: Ctx): void {
  const hd = open(c, 1, T_ZSET)
  if (hd >= 0) c.out.int(hd === 0 ? 0 : zs(c).count(hd))
}

function node (c: Ctx, hd: number, i: number): number {
  return hd === 0 ? 0 : zs(c).find(hd, hashOf(c, c.buf, c.s(i), c.e(i)), c.buf, c.s(i), c.e(i))
}

function zscore (c: Ctx): void {
  const hd = open(c, 1, T_ZSET)
  if (hd < 0) return
  const n = node(c, hd, 2)
  if (n === 0) c.out.nil()
  else replyScore(c, zs(c).score(n))
}

function zmscore (c: Ctx): void {
  const hd = open(c, 1, T_ZSET)
  if (hd < 0) return
  c.out.arrayHeader(c.argc - 2)
  for (let i = 2; i < c.argc; i++) {
    const n = node(c, hd, i)
    if (n === 0) c.out.nil()
    else replyScore(c, zs(c).score(n))
  }
}

/** ZRANK/ZREVRANK key member [WITHSCORE] (Redis 7.2): the rank, or [rank, score]; nil (a nil array with WITHSCORE) when absent. */
function zrank (c: Ctx, rev: boolean): void {
  if (c.argc > 4) { c.out.error(WRONG_ARGS(rev ? 'zrevrank' : 'zrank')); return }
  const withScore = c.argc === 4
  if (withScore && c.str(3).toLowerCase() !== 'withscore') { c.out.error(SYNTAX); return }
  const hd = open(c, 1, T_ZSET)
  if (hd < 0) return
  const n = node(c, hd, 2)
  if (n === 0) { if (withScore) c.out.nilArray(); else c.out.nil(); return }
  const r = zs(c).rankOf(hd, n)
  if (withScore) c.out.arrayHeader(2)
  c.out.int(rev ? zs(c).count(hd) - 1 - r : r)
  if (withScore) replyScore(c, zs(c).score(n))
}

/** Parses a score bound ("(1.5", "-inf"); sets the range's side; false if not a float. */
export function scoreBound (c: Ctx, i: number, r: ScoreRange, isMin: boolean): boolean {
  let s = c.s(i)
  const ex = c.buf[s] === 40
  if (ex) s++
  // Redis reads the bound with strtod, which takes an empty string as 0.
  const v = s === c.e(i) ? 0 : parseFloatArg(c.buf, s, c.e(i))
  if (Number.isNaN(v)) return false
  if (isMin) { r.min = v; r.minex = ex } else { r.max = v; r.maxex = ex }
  return true
}

/** Parses a lex bound ("-", "+", "[a", "(a"); false if invalid. */
export function lexBound (c: Ctx, i: number, out: LexBound): boolean {
  const s = c.s(i); const e = c.e(i)
  out.b = c.buf
  if (e - s === 1 && (c.buf[s] === 45 || c.buf[s] === 43)) { out.inf = c.buf[s] === 45 ? -1 : 1; return true }
  if (e - s < 1 || (c.buf[s] !== 40 && c.buf[s] !== 91)) return false
  out.inf = 0
  out.ex = c.buf[s] === 40
  out.s = s + 1
  out.e = e
  return true
}

/** Pops up to `count` from the low (min) or high end; replies [member, score, ...] (or nil/empty as Redis). */
function zpop (c: Ctx, max: boolean): void {
  let count = 1
  if (c.argc > 3) { c.out.error(SYNTAX); return }
  if (c.argc === 3) {
    const n = c.num(2)
    if (n === null || n < 0) { c.out.error('ERR value is out of range, must be positive'); return }
    count = n
  }
  const hd = open(c, 1, T_ZSET)
  if (hd < 0) return
  if (hd === 0) { c.out.arrayHeader(0); return }
  const z = zs(c)
  const n = Math.min(count, z.count(hd))
  // Without a count the reply stays one flat pair, in RESP3 too (Redis's count -1).
  const pairs = c.argc === 3 ? scoredHeader(c, n, true) : (c.out.arrayHeader(2 * n), false)
  for (let i = 0; i < n; i++) {
    const x = max ? z.tail(hd) : z.fwd(z.head(hd), 0)
    if (pairs) c.out.arrayHeader(2)
    replyMember(c, z, x)
    replyScore(c, z.score(x))
    z.member(x)
    z.find(hd, hashOf(c, z.h.b[mA], mS, mE), z.h.b[mA], mS, mE)
    z.remove(hd, x, z.dict.slot)
  }
  if (n > 0) notify(c, NOTIFY_ZSET, max ? 'zpopmax' : 'zpopmin', 1)
  if (z.count(hd) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c, 1, z.count(hd))
}

function zrandmember (c: Ctx): void {
  const hd = open(c, 1, T_ZSET)
  if (hd < 0) return
  const z = zs(c)
  const rnd = (): number => z.byRank(hd, Math.floor(Math.random() * z.count(hd)))
  if (c.argc === 2) {
    if (hd === 0) c.out.nil()
    else replyMember(c, z, rnd())
    return
  }
  const count = c.num(2)
  if (count === null || Math.abs(count) > Number.MAX_SAFE_INTEGER / 2) { c.out.error(NOT_INT); return }
  const ws = c.argc === 4 && c.is(3, 'withscores')
  if (c.argc > 4 || (c.argc === 4 && !ws)) { c.out.error(SYNTAX); return }
  const refs: number[] = []
  if (hd !== 0) {
    if (count < 0) for (let i = 0; i < -count; i++) refs.push(rnd())
    else if (count >= z.count(hd)) for (let x = z.fwd(z.head(hd), 0); x !== 0; x = z.fwd(x, 0)) refs.push(x)
    else {
      const ranks = new Set<number>()
      while (ranks.size < count) ranks.add(Math.floor(Math.random() * z.count(hd)))
      for (const r of ranks) refs.push(z.byRank(hd, r))
    }
  }
  const pairs = scoredHeader(c, refs.length, ws)
  for (const x of refs) {
    if (pairs) c.out.arrayHeader(2)
    replyMember(c, z, x)
    if (ws) replyScore(c, z.score(x))
  }
}

function zscan (c: Ctx): void {
  const o = scanArgs(c, 2)
  if (o === null) return
  const hd = open(c, 1, T_ZSET)
  if (hd < 0) return
  const z = zs(c)
  const refs: number[] = []
  let cursor = 0
  const visit = (x: number): void => {
    z.member(x)
    if (o.glob === null || o.glob.matches(z.h.b[mA], mS, mE)) refs.push(x)
  }
  if (hd !== 0 && z.packed(hd)) {
    // As Redis does for a listpack: everything in one call, cursor 0.
    for (let x = z.fwd(z.head(hd), 0); x !== 0; x = z.fwd(x, 0)) visit(x)
  } else if (hd !== 0) {
    cursor = o.cursor
    let steps = 0
    do cursor = z.dict.scanStep(hd, cursor, visit); while (cursor !== 0 && ++steps < o.count)
  }
  c.out.arrayHeader(2)
  c.out.bulkString(String(cursor))
  c.out.arrayHeader(2 * refs.length)
  // SCAN replies are strings in RESP3 too, scores included.
  for (const x of refs) { replyMember(c, z, x); c.out.bulkString(formatScore(z.score(x))) }
}

/**
 * Pops the lowest (or, with `max`, highest) member of the sorted set at key `b[s, e)`, for kv-conn's
 * BZPOPMIN/BZPOPMAX: [member, score], null if there is no such key, or WRONGTYPE's text.
 */
export function zsetPop (store: Store, b: Buffer, s: number, e: number, max: boolean): [Buffer, number] | string | null {
  if (store.find(b, s, e) < 0) return null
  if (tagOf(store) !== T_ZSET || !isHeapRecord(store.seg, store.off)) return WRONGTYPE
  const hd = refOf(store)
  const z = typesOf(store).zsets
  const x = max ? z.tail(hd) : z.fwd(z.head(hd), 0)
  z.member(x)
  const member = Buffer.from(z.h.b[mA].subarray(mS, mE))
  const score = z.score(x)
  z.find(hd, store.keyHash.of(member, 0, member.length), member, 0, member.length)
  z.remove(hd, x, z.dict.slot)
  if (z.count(hd) === 0) store.removeAt(store.find(b, s, e))
  return [member, score]
}

/** Stores a built zset `hd` at argument i (replacing what is there); replies its size. */
export function storeResult (c: Ctx, i: number, hd: number): void {
  const z = zs(c)
  const n = z.count(hd)
  const at = c.store.find(c.buf, c.s(i), c.e(i))
  if (at >= 0) c.store.removeAt(at)
  if (n === 0) { z.destroy(hd); c.out.int(0); if (at >= 0) notify(c, NOTIFY_GENERIC, 'del', i); return }
  if (!createKey(c.store, c.buf, c.s(i), c.e(i), T_ZSET, hd, c.store.find(c.buf, c.s(i), c.e(i)), c)) { z.destroy(hd); return }
  c.out.int(n)
  // The event is the command's name: zunionstore, zinterstore.
  if (notifying()) notify(c, NOTIFY_ZSET, c.str(0).toLowerCase(), i)
}

const w = ['write', 'denyoom', 'fast']
const r = ['readonly', 'fast']
export const zsetCoreCommands: Command[] = [
  { name: 'zadd', arity: -4, flags: w, keys: [1, 1, 1], run: zadd },
  { name: 'zincrby', arity: 4, flags: w, keys: [1, 1, 1], run: zincrby },
  { name: 'zrem', arity: -3, flags: ['write', 'fast'], keys: [1, 1, 1], run: zrem },
  { name: 'zcard', arity: 2, flags: r, keys: [1, 1, 1], run: zcard },
  { name: 'zscore', arity: 3, flags: r, keys: [1, 1, 1], run: zscore },
  { name: 'zmscore', arity: -3, flags: r, keys: [1, 1, 1], run: zmscore },
  { name: 'zrank', arity: -3, flags: r, keys: [1, 1, 1], run: (c) => zrank(c, false) },
  { name: 'zrevrank', arity: -3, flags: r, keys: [1, 1, 1], run: (c) => zrank(c, true) },
  { name: 'zpopmin', arity: -2, flags: ['write', 'fast'], keys: [1, 1, 1], run: (c) => zpop(c, false) },
  { name: 'zpopmax', arity: -2, flags: ['write', 'fast'], keys: [1, 1, 1], run: (c) => zpop(c, true) },
  { name: 'zrandmember', arity: -2, flags: ['readonly', 'random'], keys: [1, 1, 1], run: zrandmember },
  { name: 'zscan', arity: -3, flags: ['readonly'], keys: [1, 1, 1], run: zscan }
]
