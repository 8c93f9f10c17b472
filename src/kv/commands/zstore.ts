/** ZUNION, ZINTER, ZDIFF (and their STORE forms) and ZINTERCARD: sources may be sorted sets or sets (score 1). */
import { SET, keyOf, kArena, kStart, kEnd } from '../types/dict.ts'
import { mA, mS, mE } from '../types/zset.ts'
import { parseFloatArg, hashOf, T_SET, T_ZSET, WRONGTYPE, tagOf, refOf } from '../types/access.ts'
import { NOT_INT, SYNTAX, type Ctx } from './context.ts'
import { zs, storeResult, replyMember, replyScore, scoredHeader } from './zset.ts'
import type { Command } from './types.ts'

interface Source { hd: number, type: number, weight: number }

const SUM = 0; const MIN = 1; const MAX = 2

function aggregate (a: number, b: number, how: number): number {
  if (how === MIN) return Math.min(a, b)
  if (how === MAX) return Math.max(a, b)
  const s = a + b
  return Number.isNaN(s) ? 0 : s
}

const UNION = 0; const INTER = 1; const DIFF = 2

/** Which options a command takes after its keys, as Redis's zunionInterDiffGenericCommand decides. */
interface Form { op: number, store: boolean, card: boolean }
interface Parsed { sources: Source[], how: number, withScores: boolean, limit: number }

/** Parses `numkeys key...` from argument `at` and the options after the keys; null after replying. */
function parse (c: Ctx, at: number, f: Form): Parsed | null {
  const n = c.num(at)
  if (n === null) { c.out.error(NOT_INT); return null }
  if (n < 1) { c.out.error(`ERR at least 1 input key is needed for '${c.str(0).toLowerCase()}' command`); return null }
  if (n > c.argc - at - 1) { c.out.error(SYNTAX); return null }
  const sources: Source[] = []
  for (let i = at + 1; i <= at + n; i++) {
    let hd = 0; let type = T_ZSET
    if (c.store.find(c.buf, c.s(i), c.e(i)) >= 0) {
      type = tagOf(c.store)
      if (type !== T_ZSET && type !== T_SET) { c.out.error(WRONGTYPE); return null }
      hd = refOf(c.store)
    }
    sources.push({ hd, type, weight: 1 })
  }
  const p: Parsed = { sources, how: SUM, withScores: false, limit: 0 }
  const scoring = f.op !== DIFF && !f.card
  for (let i = at + 1 + n; i < c.argc; i++) {
    if (scoring && c.is(i, 'weights') && i + n < c.argc) {
      for (let k = 0; k < n; k++) {
        const v = parseFloatArg(c.buf, c.s(i + 1 + k), c.e(i + 1 + k))
        if (Number.isNaN(v)) { c.out.error('ERR weight value is not a float'); return null }
        sources[k].weight = v
      }
      i += n
    } else if (scoring && c.is(i, 'aggregate') && i + 1 < c.argc) {
      i++
      if (c.is(i, 'sum')) p.how = SUM
      else if (c.is(i, 'min')) p.how = MIN
      else if (c.is(i, 'max')) p.how = MAX
      else { c.out.error(SYNTAX); return null }
    } else if (!f.store && !f.card && c.is(i, 'withscores')) {
      p.withScores = true
    } else if (f.card && c.is(i, 'limit') && i + 1 < c.argc) {
      const v = c.num(++i)
      // One message for a negative and a non-integer limit (Redis's getPositiveLongFromObjectOrReply).
      if (v === null || v < 0) { c.out.error("ERR LIMIT can't be negative"); return null }
      p.limit = v
    } else { c.out.error(SYNTAX); return null }
  }
  return p
}

function weighted (score: number, w: number): number {
  const v = score * w
  return Number.isNaN(v) ? 0 : v
}

/** Calls fn(buf, s, e, score) for every member of a source, until fn returns false. */
function each (c: Ctx, src: Source, fn: (b: Buffer, s: number, e: number, score: number) => boolean | undefined): void {
  if (src.hd === 0) return
  const z = zs(c)
  if (src.type === T_ZSET) {
    for (let x = z.fwd(z.head(src.hd), 0); x !== 0; x = z.fwd(x, 0)) {
      z.member(x)
      if (fn(z.h.b[mA], mS, mE, z.score(x)) === false) return
    }
    return
  }
  const d = z.dict
  const cap = d.cap(src.hd)
  for (let i = 0; i < cap; i++) {
    const ref = d.at(src.hd, i)
    if (ref === 0) continue
    keyOf(d.h, SET, ref)
    if (fn(d.h.b[kArena], kStart, kEnd, 1) === false) return
  }
}

/** The score of member b[s, e) in a source, or NaN if absent. */
function scoreIn (c: Ctx, src: Source, hash: number, b: Buffer, s: number, e: number): number {
  if (src.hd === 0) return NaN
  const z = zs(c)
  if (src.type === T_ZSET) {
    const n = z.find(src.hd, hash, b, s, e)
    return n === 0 ? NaN : z.score(n)
  }
  return z.dict.find(src.hd, SET, hash, b, s, e) ? 1 : NaN
}

function size (c: Ctx, src: Source): number { return src.hd === 0 ? 0 : zs(c).dict.count(src.hd) }

/** The sources in the order an intersection walks them: the smallest first. */
function smallestFirst (c: Ctx, sources: Source[]): Source[] {
  return [...sources].sort((a, b) => size(c, a) - size(c, b))
}

/** Builds the result of `op` over the sources as a new zset (the caller stores or destroys it). */
function combine (c: Ctx, op: number, p: Parsed): number {
  const z = zs(c)
  const out = z.create()
  const [first, ...rest] = op === INTER ? smallestFirst(c, p.sources) : p.sources
  if (op === UNION) {
    for (const src of p.sources) {
      each(c, src, (b, s, e, score) => {
        const v = weighted(score, src.weight)
        const hash = hashOf(c, b, s, e)
        const n = z.find(out, hash, b, s, e)
        if (n === 0) z.insert(out, hash, v, b, s, e)
        else z.rescore(out, n, z.dict.slot, aggregate(z.score(n), v, p.how))
        return true
      })
    }
    return out
  }
  each(c, first, (b, s, e, score) => {
    const hash = hashOf(c, b, s, e)
    let acc = op === DIFF ? score : weighted(score, first.weight)
    for (const other of rest) {
      const v = scoreIn(c, other, hash, b, s, e)
      if (op === DIFF ? !Number.isNaN(v) : Number.isNaN(v)) return true
      if (op === INTER) acc = aggregate(acc, weighted(v, other.weight), p.how)
    }
    z.insert(out, hash, acc, b, s, e)
    return true
  })
  return out
}

/** ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE dest numkeys key...: stores the result, replies its size. */
function zsetStore (c: Ctx, op: number): void {
  const p = parse(c, 2, { op, store: true, card: false })
  if (p === null) return
  storeResult(c, 1, combine(c, op, p))
}

/** ZUNION, ZINTER, ZDIFF numkeys key... [WITHSCORES]: replies the result as ZRANGE 0 -1 would. */
function zsetRead (c: Ctx, op: number): void {
  const p = parse(c, 1, { op, store: false, card: false })
  if (p === null) return
  const z = zs(c)
  const hd = combine(c, op, p)
  try {
    const pairs = scoredHeader(c, z.count(hd), p.withScores)
    for (let x = z.fwd(z.head(hd), 0); x !== 0; x = z.fwd(x, 0)) {
      if (pairs) c.out.arrayHeader(2)
      replyMember(c, z, x)
      if (p.withScores) replyScore(c, z.score(x))
    }
  } finally {
    z.destroy(hd)
  }
}

/** ZINTERCARD numkeys key... [LIMIT n]: the intersection's size, counted up to the limit (0: none). */
function zintercard (c: Ctx): void {
  const p = parse(c, 1, { op: INTER, store: false, card: true })
  if (p === null) return
  const [first, ...rest] = smallestFirst(c, p.sources)
  let n = 0
  each(c, first, (b, s, e) => {
    const hash = hashOf(c, b, s, e)
    for (const other of rest) if (Number.isNaN(scoreIn(c, other, hash, b, s, e))) return true
    n++
    return p.limit === 0 || n < p.limit
  })
  c.out.int(n)
}

const movable = ['readonly', 'movablekeys']
export const zstoreCommands: Command[] = [
  { name: 'zunionstore', arity: -4, flags: ['write', 'denyoom'], keys: [1, 1, 1], run: (c) => zsetStore(c, UNION) },
  { name: 'zinterstore', arity: -4, flags: ['write', 'denyoom'], keys: [1, 1, 1], run: (c) => zsetStore(c, INTER) },
  { name: 'zdiffstore', arity: -4, flags: ['write', 'denyoom'], keys: [1, 1, 1], run: (c) => zsetStore(c, DIFF) },
  { name: 'zunion', arity: -3, flags: movable, keys: [0, 0, 0], run: (c) => zsetRead(c, UNION) },
  { name: 'zinter', arity: -3, flags: movable, keys: [0, 0, 0], run: (c) => zsetRead(c, INTER) },
  { name: 'zdiff', arity: -3, flags: movable, keys: [0, 0, 0], run: (c) => zsetRead(c, DIFF) },
  { name: 'zintercard', arity: -3, flags: movable, keys: [0, 0, 0], run: zintercard }
]
