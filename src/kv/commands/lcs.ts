/** LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN], as Redis computes and answers it. */
import { NOT_INT, SYNTAX, WRONG, type Ctx } from './context.ts'
import type { Command } from './types.ts'

/** Key i's string value (empty if there is none), or null after WRONGTYPE. */
function value (c: Ctx, i: number): Buffer | null {
  const slot = c.findString(i)
  if (slot === WRONG) return null
  if (slot < 0) return Buffer.alloc(0)
  const { seg, off } = c.store
  const vs = seg.valStart(off)
  return Buffer.from(seg.bytes.subarray(vs, vs + seg.valLen(off)))
}

interface LcsOptions { len: boolean, idx: boolean, minMatch: number, withLen: boolean }

function options (c: Ctx): LcsOptions | null {
  const o: LcsOptions = { len: false, idx: false, minMatch: 0, withLen: false }
  for (let i = 3; i < c.argc; i++) {
    if (c.is(i, 'len')) o.len = true
    else if (c.is(i, 'idx')) o.idx = true
    else if (c.is(i, 'withmatchlen')) o.withLen = true
    else if (c.is(i, 'minmatchlen') && i + 1 < c.argc) {
      const n = c.num(++i)
      if (n === null) { c.out.error(NOT_INT); return null }
      o.minMatch = Math.max(0, n)
    } else { c.out.error(SYNTAX); return null }
  }
  if (o.len && o.idx) { c.out.error('ERR If you want both the length and indexes, please just use IDX.'); return null }
  return o
}

function lcs (c: Ctx): void {
  const o = options(c)
  if (o === null) return
  const a = value(c, 1)
  if (a === null) return
  const b = value(c, 2)
  if (b === null) return
  const alen = a.length
  const blen = b.length
  if ((alen + 1) * (blen + 1) > 2 ** 28) { c.out.error('ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len'); return }
  const w = blen + 1
  const t = new Uint32Array((alen + 1) * w)
  for (let i = 1; i <= alen; i++) {
    for (let j = 1; j <= blen; j++) {
      t[i * w + j] = a[i - 1] === b[j - 1] ? t[(i - 1) * w + j - 1] + 1 : Math.max(t[(i - 1) * w + j], t[i * w + j - 1])
    }
  }
  let idx = t[alen * w + blen]
  if (o.len) { c.out.int(idx); return }
  const total = idx
  const result = Buffer.alloc(idx)
  const ranges: number[][] = []
  let i = alen
  let j = blen
  let as = alen; let ae = 0; let bs = 0; let be = 0
  // Redis's walk back from the end, emitting each maximal run of matches as a range.
  while (i > 0 && j > 0) {
    let emit = false
    if (a[i - 1] === b[j - 1]) {
      result[idx - 1] = a[i - 1]
      if (as === alen) { as = i - 1; ae = i - 1; bs = j - 1; be = j - 1 } else if (as === i && bs === j) { as--; bs-- } else emit = true
      if (as === 0 || bs === 0) emit = true
      idx--; i--; j--
    } else {
      if (t[(i - 1) * w + j] > t[i * w + j - 1]) i--
      else j--
      if (as !== alen) emit = true
    }
    const matchLen = ae - as + 1
    if (emit) {
      if (o.minMatch === 0 || matchLen >= o.minMatch) ranges.push([as, ae, bs, be, matchLen])
      as = alen
    }
  }
  if (!o.idx) { c.out.bulk(result, 0, result.length); return }
  c.out.arrayHeader(4)
  c.out.bulkString('matches')
  c.out.arrayHeader(ranges.length)
  for (const r of ranges) {
    c.out.arrayHeader(o.withLen ? 3 : 2)
    c.out.arrayHeader(2); c.out.int(r[0]); c.out.int(r[1])
    c.out.arrayHeader(2); c.out.int(r[2]); c.out.int(r[3])
    if (o.withLen) c.out.int(r[4])
  }
  c.out.bulkString('len')
  c.out.int(total)
}

export const lcsCommands: Command[] = [
  { name: 'lcs', arity: -3, flags: ['readonly'], keys: [1, 2, 1], run: lcs }
]
