/** ZUNIONSTORE and ZINTERSTORE: sources may be sorted sets or sets (score 1). */
import { SET, keyOf, kArena, kStart, kEnd } from '../types/dict.ts'
import { mA, mS, mE } from '../types/zset.ts'
import { parseFloatArg, hashOf, T_SET, T_ZSET, WRONGTYPE, tagOf, refOf } from '../types/access.ts'
import { NOT_INT, SYNTAX, type Ctx } from './context.ts'
import { zs, storeResult } from './zset.ts'
import type { Command } from './types.ts'

interface Source { hd: number, type: number, weight: number }

const SUM = 0; const MIN = 1; const MAX = 2

function aggregate (a: number, b: number, how: number): number {
  if (how === MIN) return Math.min(a, b)
  if (how === MAX) return Math.max(a, b)
  const s = a + b
  return Number.isNaN(s) ? 0 : s
}

/** Parses `numkeys key... [WEIGHTS] [AGGREGATE]` from argument 2; null after replying. */
function parse (c: Ctx, name: string): { sources: Source[], how: number } | null {
  const n = c.num(2)
  if (n === null) { c.out.error(NOT_INT); return null }
  if (n < 1) { c.out.error(`ERR at least 1 input key is needed for '${name}' command`); return null }
  if (n > c.argc - 3) { c.out.error(SYNTAX); return null }
  const sources: Source[] = []
  for (let i = 3; i < 3 + n; i++) {
    let hd = 0; let type = T_ZSET
    if (c.store.find(c.buf, c.s(i), c.e(i)) >= 0) {
      type = tagOf(c.store)
      if (type !== T_ZSET && type !== T_SET) { c.out.error(WRONGTYPE); return null }
      hd = refOf(c.store)
    }
    sources.push({ hd, type, weight: 1 })
  }
  let how = SUM
  for (let i = 3 + n; i < c.argc; i++) {
    if (c.is(i, 'weights') && i + n < c.argc) {
      for (let k = 0; k < n; k++) {
        const v = parseFloatArg(c.buf, c.s(i + 1 + k), c.e(i + 1 + k))
        if (Number.isNaN(v)) { c.out.error('ERR weight value is not a float'); return null }
        sources[k].weight = v
      }
      i += n
    } else if (c.is(i, 'aggregate') && i + 1 < c.argc) {
      i++
      if (c.is(i, 'sum')) how = SUM
      else if (c.is(i, 'min')) how = MIN
      else if (c.is(i, 'max')) how = MAX
      else { c.out.error(SYNTAX); return null }
    } else { c.out.error(SYNTAX); return null }
  }
  return { sources, how }
}

function weighted (score: number, w: number): number {
  const v = score * w
  return Number.isNaN(v) ? 0 : v
}

/** Calls fn(buf, s, e, score) for every member of a source. */
function each (c: Ctx, src: Source, fn: (b: Buffer, s: number, e: number, score: number) => void): void {
  if (src.hd === 0) return
  const z = zs(c)
  if (src.type === T_ZSET) {
    for (let x = z.fwd(z.head(src.hd), 0); x !== 0; x = z.fwd(x, 0)) {
      z.member(x)
      fn(z.h.b[mA], mS, mE, z.score(x))
    }
    return
  }
  const d = z.dict
  const cap = d.cap(src.hd)
  for (let i = 0; i < cap; i++) {
    const ref = d.at(src.hd, i)
    if (ref === 0) continue
    keyOf(d.h, SET, ref)
    fn(d.h.b[kArena], kStart, kEnd, 1)
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

export function zsetStore (c: Ctx, union: boolean): void {
  const p = parse(c, union ? 'zunionstore' : 'zinterstore')
  if (p === null) return
  const { sources, how } = p
  const z = zs(c)
  const out = z.create()
  if (union) {
    for (const src of sources) {
      each(c, src, (b, s, e, score) => {
        const v = weighted(score, src.weight)
        const hash = hashOf(c, b, s, e)
        const n = z.find(out, hash, b, s, e)
        if (n === 0) z.insert(out, hash, v, b, s, e)
        else z.rescore(out, n, z.dict.slot, aggregate(z.score(n), v, how))
      })
    }
  } else {
    const order = sources.map((_, i) => i).sort((a, b) => size(c, sources[a]) - size(c, sources[b]))
    const first = sources[order[0]]
    each(c, first, (b, s, e, score) => {
      const hash = hashOf(c, b, s, e)
      let acc = weighted(score, first.weight)
      for (let k = 1; k < order.length; k++) {
        const other = sources[order[k]]
        const v = scoreIn(c, other, hash, b, s, e)
        if (Number.isNaN(v)) return
        acc = aggregate(acc, weighted(v, other.weight), how)
      }
      z.insert(out, hash, acc, b, s, e)
    })
  }
  storeResult(c, 1, out)
}

export const zstoreCommands: Command[] = [
  { name: 'zunionstore', arity: -4, flags: ['write', 'denyoom'], keys: [1, 1, 1], run: (c) => zsetStore(c, true) },
  { name: 'zinterstore', arity: -4, flags: ['write', 'denyoom'], keys: [1, 1, 1], run: (c) => zsetStore(c, false) }
]
