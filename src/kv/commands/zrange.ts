/** Sorted set range commands: ZRANGE and its older forms, ZRANGESTORE, ZCOUNT, ZLEXCOUNT, ZREMRANGEBY*. */
import { gteMin, lteMax, mA, mS, mE, type ScoreRange, type LexBound, type ZSets } from '../types/zset.ts'
import { open, dropIfEmpty, hashOf, T_ZSET } from '../types/access.ts'
import { NOT_INT, SYNTAX, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { zs, replyMember, replyScore, scoredHeader, scoreBound, lexBound, storeResult } from './zset.ts'
import { NOTIFY_GENERIC, NOTIFY_ZSET, notify } from '../notify.ts'

const RANK = 0; const SCORE = 1; const LEX = 2

interface Spec { by: number, rev: boolean, offset: number, limit: number, withScores: boolean, limited?: boolean }

const NOT_FLOAT_RANGE = 'ERR min or max is not a float'
const NOT_LEX_RANGE = 'ERR min or max not valid string range item'

const score: ScoreRange = { min: 0, max: 0, minex: false, maxex: false }
const lmin: LexBound = { inf: 0, ex: false, b: Buffer.alloc(0), s: 0, e: 0 }
const lmax: LexBound = { inf: 0, ex: false, b: Buffer.alloc(0), s: 0, e: 0 }
/** Nodes of the range being replied or removed; reused so a range allocates nothing per call. */
const found: number[] = []

/** Parses the options from argument `from`; BYSCORE, BYLEX and REV only for ZRANGE(STORE), WITHSCORES not for ZRANGESTORE. Null after replying. */
function options (c: Ctx, from: number, spec: Spec, zrange: boolean, store = false): Spec | null {
  for (let i = from; i < c.argc; i++) {
    if (!store && c.is(i, 'withscores')) spec.withScores = true
    else if (c.is(i, 'limit') && i + 2 < c.argc) {
      const o = c.num(i + 1); const n = c.num(i + 2)
      if (o === null || n === null) { c.out.error(NOT_INT); return null }
      spec.offset = o; spec.limit = n; spec.limited = true
      i += 2
    } else if (zrange && c.is(i, 'byscore')) spec.by = SCORE
    else if (zrange && c.is(i, 'bylex')) spec.by = LEX
    else if (zrange && c.is(i, 'rev')) spec.rev = true
    else { c.out.error(SYNTAX); return null }
  }
  if (spec.by === RANK && spec.limited === true) {
    c.out.error('ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX'); return null
  }
  if (spec.by === LEX && spec.withScores) { c.out.error('ERR syntax error, WITHSCORES not supported in combination with BYLEX'); return null }
  return spec
}

/** Parses min/max (arguments a, b; swapped for rev) for SCORE or LEX; false after replying. */
function bounds (c: Ctx, by: number, minArg: number, maxArg: number): boolean {
  if (by === SCORE) {
    if (!scoreBound(c, minArg, score, true) || !scoreBound(c, maxArg, score, false)) { c.out.error(NOT_FLOAT_RANGE); return false }
  } else if (by === LEX) {
    if (!lexBound(c, minArg, lmin) || !lexBound(c, maxArg, lmax)) { c.out.error(NOT_LEX_RANGE); return false }
  }
  return true
}

/** Fills `found` with the range's nodes in reply order. */
function collect (c: Ctx, z: ZSets, hd: number, spec: Spec, start: number, stop: number): void {
  found.length = 0
  const n = z.count(hd)
  if (spec.by === RANK) {
    if (start < 0) start = Math.max(0, n + start)
    if (stop < 0) stop = n + stop
    if (stop >= n) stop = n - 1
    if (start > stop || start >= n) return
    let x = z.byRank(hd, spec.rev ? n - 1 - start : start)
    for (let i = start; i <= stop && x !== 0; i++) { found.push(x); x = spec.rev ? z.back(x) : z.fwd(x, 0) }
    return
  }
  if (spec.offset < 0) return
  let x = spec.by === SCORE
    ? (spec.rev ? z.lastInScore(hd, score) : z.firstInScore(hd, score))
    : (spec.rev ? z.lastInLex(hd, lmin, lmax) : z.firstInLex(hd, lmin, lmax))
  let skip = spec.offset
  while (x !== 0 && (spec.limit < 0 || found.length < spec.limit)) {
    if (!inRange(z, x, spec.by)) break
    if (skip > 0) skip--
    else found.push(x)
    x = spec.rev ? z.back(x) : z.fwd(x, 0)
  }
}

function inRange (z: ZSets, x: number, by: number): boolean {
  if (by === SCORE) return gteMin(z.score(x), score) && lteMax(z.score(x), score)
  return z.lexGteMin(x, lmin) && z.lexLteMax(x, lmax)
}

/** The found nodes; with scores, RESP2 interleaves them and RESP3 pairs them ([member, score] each), as Redis does. */
function reply (c: Ctx, z: ZSets, withScores: boolean): void {
  const pairs = scoredHeader(c, found.length, withScores)
  for (const x of found) {
    if (pairs) c.out.arrayHeader(2)
    replyMember(c, z, x)
    if (withScores) replyScore(c, z.score(x))
  }
}

/** ZRANGE-family: `by`, `rev` fixed by the command name unless `zrange`. */
function range (c: Ctx, by: number, rev: boolean, zrange: boolean): void {
  const spec = options(c, 4, { by, rev, offset: 0, limit: -1, withScores: false }, zrange)
  if (spec === null || !rangeOf(c, spec, 1)) return
  reply(c, zs(c), spec.withScores)
  found.length = 0
}

/** ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]: stores the range, replies its size. */
function rangeStore (c: Ctx): void {
  const spec = options(c, 5, { by: RANK, rev: false, offset: 0, limit: -1, withScores: false }, true, true)
  if (spec === null || !rangeOf(c, spec, 2)) return
  const z = zs(c)
  const out = z.create()
  for (const x of found) {
    z.member(x)
    z.insert(out, hashOf(c, z.h.b[mA], mS, mE), z.score(x), z.h.b[mA], mS, mE)
  }
  found.length = 0
  storeResult(c, 1, out)
}

/** Fills `found` with the range of the sorted set at argument `key` (bounds after it); false after replying an error. */
function rangeOf (c: Ctx, spec: Spec, key: number): boolean {
  found.length = 0
  let start = 0; let stop = 0
  if (spec.by === RANK) {
    const a = c.num(key + 1); const b = c.num(key + 2)
    if (a === null || b === null) { c.out.error(NOT_INT); return false }
    start = a; stop = b
  } else {
    // ZRANGE ... REV and the ZREV* forms take max first.
    const [minArg, maxArg] = spec.rev ? [key + 2, key + 1] : [key + 1, key + 2]
    if (!bounds(c, spec.by, minArg, maxArg)) return false
  }
  const hd = open(c, key, T_ZSET)
  if (hd < 0) return false
  if (hd !== 0) collect(c, zs(c), hd, spec, start, stop)
  return true
}

/** ZCOUNT (SCORE) and ZLEXCOUNT (LEX). */
function count (c: Ctx, by: number): void {
  if (!bounds(c, by, 2, 3)) return
  const hd = open(c, 1, T_ZSET)
  if (hd < 0) return
  if (hd === 0) { c.out.int(0); return }
  const z = zs(c)
  const first = by === SCORE ? z.firstInScore(hd, score) : z.firstInLex(hd, lmin, lmax)
  if (first === 0) { c.out.int(0); return }
  const last = by === SCORE ? z.lastInScore(hd, score) : z.lastInLex(hd, lmin, lmax)
  c.out.int(last === 0 ? 0 : Math.max(0, z.rankOf(hd, last) - z.rankOf(hd, first) + 1))
}

/** ZREMRANGEBYRANK/SCORE/LEX. */
function remRange (c: Ctx, by: number): void {
  let start = 0; let stop = 0
  if (by === RANK) {
    const a = c.num(2); const b = c.num(3)
    if (a === null || b === null) { c.out.error(NOT_INT); return }
    start = a; stop = b
  } else if (!bounds(c, by, 2, 3)) return
  const hd = open(c, 1, T_ZSET)
  if (hd <= 0) { if (hd === 0) c.out.int(0); return }
  const z = zs(c)
  collect(c, z, hd, { by, rev: false, offset: 0, limit: -1, withScores: false }, start, stop)
  // From the last: removing a packed entry moves the ones after it, never the ones before.
  for (let k = found.length - 1; k >= 0; k--) {
    const x = found[k]
    z.member(x)
    z.find(hd, hashOf(c, z.h.b[mA], mS, mE), z.h.b[mA], mS, mE)
    z.remove(hd, x, z.dict.slot)
  }
  const n = found.length
  found.length = 0
  if (n > 0) notify(c, NOTIFY_ZSET, by === RANK ? 'zremrangebyrank' : by === SCORE ? 'zremrangebyscore' : 'zremrangebylex', 1)
  if (z.count(hd) === 0) notify(c, NOTIFY_GENERIC, 'del', 1)
  dropIfEmpty(c, 1, z.count(hd))
  c.out.int(n)
}

const ro = ['readonly']
export const zrangeCommands: Command[] = [
  { name: 'zrange', arity: -4, flags: ro, keys: [1, 1, 1], run: (c) => range(c, RANK, false, true) },
  { name: 'zrangestore', arity: -5, flags: ['write', 'denyoom'], keys: [1, 2, 1], run: rangeStore },
  { name: 'zrevrange', arity: -4, flags: ro, keys: [1, 1, 1], run: (c) => range(c, RANK, true, false) },
  { name: 'zrangebyscore', arity: -4, flags: ro, keys: [1, 1, 1], run: (c) => range(c, SCORE, false, false) },
  { name: 'zrevrangebyscore', arity: -4, flags: ro, keys: [1, 1, 1], run: (c) => range(c, SCORE, true, false) },
  { name: 'zrangebylex', arity: -4, flags: ro, keys: [1, 1, 1], run: (c) => range(c, LEX, false, false) },
  { name: 'zrevrangebylex', arity: -4, flags: ro, keys: [1, 1, 1], run: (c) => range(c, LEX, true, false) },
  { name: 'zcount', arity: 4, flags: [...ro, 'fast'], keys: [1, 1, 1], run: (c) => count(c, SCORE) },
  { name: 'zlexcount', arity: 4, flags: [...ro, 'fast'], keys: [1, 1, 1], run: (c) => count(c, LEX) },
  { name: 'zremrangebyrank', arity: 4, flags: ['write'], keys: [1, 1, 1], run: (c) => remRange(c, RANK) },
  { name: 'zremrangebyscore', arity: 4, flags: ['write'], keys: [1, 1, 1], run: (c) => remRange(c, SCORE) },
  { name: 'zremrangebylex', arity: 4, flags: ['write'], keys: [1, 1, 1], run: (c) => remRange(c, LEX) }
]
