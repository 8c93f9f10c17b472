/**
 * Sorted sets: Redis's skiplist (with spans, for ranks) plus a Dict from member to node, both in
 * the heap. The header is the Dict's three words then [u32 skiplist head node][u32 tail][u32 level].
 * A node block is [f64 score][u32 backward][u32 level][u32 member len] then per level
 * [u32 forward][u32 span], then the member: the Dict's entries are the nodes themselves.
 * A small sorted set is a pack instead (zpack.ts): its header's capacity word is 0 and its first
 * word is the pack; it becomes a skiplist when it passes 128 members or gets one over 64 bytes.
 * Methods take and return nodes of either kind (a pack's positions are numbers above 2^32).
 */
import { OFF_MASK, offOf, type TypeHeap } from './heap.ts'
import { compareAt, copyBytes } from '../bytes.ts'
import { Dict, ZSET } from './dict.ts'
import { ZPack, isPseudo, pseudo, PACK_MAX_ENTRIES, PACK_MAX_MEMBER } from './zpack.ts'

export const ZHDR = 6
const MAXLEVEL = 32

/** The member of the node last read by `member`: heap.b[mA][mS, mE). */
export let mA = 0
export let mS = 0
export let mE = 0

/** A score range; ex = exclusive. */
export interface ScoreRange { min: number, max: number, minex: boolean, maxex: boolean }
/** A lex range bound: inf -1 is '-', 1 is '+', else [b[s, e) or (b[s, e). */
export interface LexBound { inf: number, ex: boolean, b: Buffer, s: number, e: number }

const update = new Uint32Array(MAXLEVEL)
const rank = new Float64Array(MAXLEVEL)

const pm = new Float64Array(3)

export class ZSets {
  readonly pack: ZPack
  constructor (readonly h: TypeHeap, readonly dict: Dict, private readonly hashOf: (b: Buffer, s: number, e: number) => number) {
    this.pack = new ZPack(h)
  }

  /** A new, empty sorted set (a pack). */
  create (): number {
    const hd = this.h.alloc(ZHDR * 4)
    const u = this.u(hd); const w = this.w(hd)
    u.fill(0, w, w + ZHDR)
    u[w] = this.pack.create(64)
    return hd
  }

  packed (hd: number): boolean { return this.u(hd)[this.w(hd) + 1] === 0 }

  /** Turns pack-encoded `hd` into a skiplist in place (the header block stays, so the key's record does too). */
  private convert (hd: number): void {
    const p = this.u(hd)[this.w(hd)]
    const sl = this.createSkiplist()
    for (let x = this.pack.next(pseudo(p, -1)); x !== 0; x = this.pack.next(x)) {
      this.member(x)
      const b = this.h.b[mA]; const s = mS; const e = mE
      this.insert(sl, this.hashOf(b, s, e), this.pack.score(x), b, s, e)
    }
    this.pack.release(p)
    const su = this.u(sl); const sw = this.w(sl)
    const u = this.u(hd); const w = this.w(hd)
    for (let i = 0; i < ZHDR; i++) u[w + i] = su[sw + i]
    this.h.release(sl, ZHDR * 4)
  }

  private createSkiplist (): number {
    const hd = this.dict.create(ZHDR)
    const head = this.newNode(MAXLEVEL, 0, EMPTY, 0, 0)
    const u = this.u(hd); const w = this.w(hd)
    u[w + 3] = head; u[w + 4] = 0; u[w + 5] = 1
    return hd
  }

  destroy (hd: number): void {
    if (this.packed(hd)) {
      this.pack.release(this.u(hd)[this.w(hd)])
      this.h.release(hd, ZHDR * 4)
      return
    }
    const head = this.head(hd)
    this.h.release(head, 20 + 8 * MAXLEVEL)
    this.dict.destroy(hd, ZSET, ZHDR)
  }

  private u (ref: number): Uint32Array { return this.h.u32[ref >>> 23] }
  private w (ref: number): number { return offOf(ref) >>> 2 }
  count (hd: number): number { return this.dict.count(hd) }
  head (hd: number): number { return this.packed(hd) ? pseudo(this.u(hd)[this.w(hd)], -1) : this.u(hd)[this.w(hd) + 3] }
  tail (hd: number): number { return this.packed(hd) ? this.pack.last(this.u(hd)[this.w(hd)]) : this.u(hd)[this.w(hd) + 4] }
  score (n: number): number { return isPseudo(n) ? this.pack.score(n) : this.h.f64[n >>> 23][offOf(n) >>> 3] }
  back (n: number): number { return isPseudo(n) ? this.pack.prev(n) : this.u(n)[this.w(n) + 2] }
  level (n: number): number { return this.u(n)[this.w(n) + 3] }
  fwd (n: number, i: number): number { return isPseudo(n) ? this.pack.next(n) : this.u(n)[this.w(n) + 5 + 2 * i] }
  span (n: number, i: number): number { return this.u(n)[this.w(n) + 6 + 2 * i] }
  private setFwd (n: number, i: number, v: number): void { this.u(n)[this.w(n) + 5 + 2 * i] = v }
  private setSpan (n: number, i: number, v: number): void { this.u(n)[this.w(n) + 6 + 2 * i] = v }
  nodeBytes (n: number): number { return 20 + 8 * this.level(n) + this.u(n)[this.w(n) + 4] }

  member (n: number): void {
    if (isPseudo(n)) {
      this.pack.member(n, pm)
      mA = pm[0]; mS = pm[1]; mE = pm[2]
      return
    }
    mA = n >>> 23
    mS = offOf(n) + 20 + 8 * this.level(n)
    mE = mS + this.u(n)[this.w(n) + 4]
  }

  private newNode (level: number, score: number, b: Buffer, s: number, e: number): number {
    const n = this.h.alloc(20 + 8 * level + (e - s))
    const u = this.u(n); const w = this.w(n)
    this.h.f64[n >>> 23][offOf(n) >>> 3] = score
    u[w + 2] = 0; u[w + 3] = level; u[w + 4] = e - s
    for (let i = 0; i < level; i++) { u[w + 5 + 2 * i] = 0; u[w + 6 + 2 * i] = 0 }
    copyBytes(this.h.b[n >>> 23], offOf(n) + 20 + 8 * level, b, s, e)
    return n
  }

  /** Node n sorts before (score, b[s, e)). */
  private before (n: number, score: number, b: Buffer, s: number, e: number): boolean {
    const ns = this.score(n)
    if (ns !== score) return ns < score
    this.member(n)
    return compareAt(this.h.dv[mA], mS, mE, b, s, e) < 0
  }

  /** Finds member b[s, e) (with its hash): its node or 0. */
  find (hd: number, hash: number, b: Buffer, s: number, e: number): number {
    if (this.packed(hd)) return this.pack.find(this.u(hd)[this.w(hd)], b, s, e)
    return this.dict.find(hd, ZSET, hash, b, s, e) ? this.dict.ref : 0
  }

  /**
   * Fills `update` and `rank` for an insert of (score, b[s, e)): the last node before it on each
   * level, and its rank. The hot loop of ZADD: the arena views are read once, and each step costs
   * the next node's score and, on a tie, its member, four bytes at a time.
   */
  private walk (head: number, level: number, score: number, b: Buffer, s: number, e: number): void {
    const u32 = this.h.u32
    const f64 = this.h.f64
    const dv = this.h.dv
    let x = head
    for (let i = level - 1; i >= 0; i--) {
      rank[i] = i === level - 1 ? 0 : rank[i + 1]
      for (;;) {
        const xu = u32[x >>> 23]
        const xw = (x & OFF_MASK) << 1
        const f = xu[xw + 5 + 2 * i]
        if (f === 0) break
        const fa = f >>> 23
        const fo = (f & OFF_MASK) << 3
        const fs = f64[fa][fo >>> 3]
        if (fs > score) break
        if (fs === score) {
          const fu = u32[fa]
          const ms = fo + 20 + 8 * fu[(fo >>> 2) + 3]
          if (compareAt(dv[fa], ms, ms + fu[(fo >>> 2) + 4], b, s, e) >= 0) break
        }
        rank[i] += xu[xw + 6 + 2 * i]
        x = f
      }
      update[i] = x
    }
  }

  /** Adds a member known to be absent. */
  insert (hd: number, hash: number, score: number, b: Buffer, s: number, e: number): number {
    const u = this.u(hd); const w = this.w(hd)
    if (u[w + 1] === 0) {
      if (u[w + 2] < PACK_MAX_ENTRIES && e - s <= PACK_MAX_MEMBER) {
        u[w] = this.pack.insert(u[w], score, b, s, e, (x) => this.before(x, score, b, s, e))
        u[w + 2]++
        return 1
      }
      this.convert(hd)
    }
    const level = u[w + 5]
    this.walk(u[w + 3], level, score, b, s, e)
    let lv = 1
    while (lv < MAXLEVEL && Math.random() < 0.25) lv++
    if (lv > level) {
      for (let i = level; i < lv; i++) { rank[i] = 0; update[i] = u[w + 3]; this.setSpan(u[w + 3], i, this.count(hd)) }
      u[w + 5] = lv
    }
    const n = this.newNode(lv, score, b, s, e)
    for (let i = 0; i < lv; i++) {
      const p = update[i]
      this.setFwd(n, i, this.fwd(p, i))
      this.setFwd(p, i, n)
      this.setSpan(n, i, this.span(p, i) - (rank[0] - rank[i]))
      this.setSpan(p, i, rank[0] - rank[i] + 1)
    }
    for (let i = lv; i < u[w + 5]; i++) this.setSpan(update[i], i, this.span(update[i], i) + 1)
    this.u(n)[this.w(n) + 2] = update[0] === u[w + 3] ? 0 : update[0]
    const next = this.fwd(n, 0)
    if (next !== 0) this.u(next)[this.w(next) + 2] = n
    else u[w + 4] = n
    this.dict.insert(hd, hash, n)
    return n
  }

  /** Removes node n (found with `find`, so dict.slot is its slot) and frees it. */
  remove (hd: number, n: number, slot: number): void {
    if (isPseudo(n)) {
      this.pack.remove(n)
      this.u(hd)[this.w(hd) + 2]--
      return
    }
    this.dict.removeSlot(hd, slot)
    this.unlink(hd, n)
    this.h.release(n, this.nodeBytes(n))
  }

  private unlink (hd: number, n: number): void {
    const u = this.u(hd); const w = this.w(hd)
    const score = this.score(n)
    this.member(n)
    const b = this.h.b[mA]; const s = mS; const e = mE
    let x = u[w + 3]
    for (let i = u[w + 5] - 1; i >= 0; i--) {
      for (let f = this.fwd(x, i); f !== 0 && f !== n && this.before(f, score, b, s, e); f = this.fwd(x, i)) x = f
      update[i] = x
    }
    for (let i = 0; i < u[w + 5]; i++) {
      const p = update[i]
      if (this.fwd(p, i) === n) {
        this.setSpan(p, i, this.span(p, i) + this.span(n, i) - 1)
        this.setFwd(p, i, this.fwd(n, i))
      } else {
        this.setSpan(p, i, this.span(p, i) - 1)
      }
    }
    const next = this.fwd(n, 0)
    if (next !== 0) this.u(next)[this.w(next) + 2] = this.back(n)
    else u[w + 4] = this.back(n)
    while (u[w + 5] > 1 && this.fwd(u[w + 3], u[w + 5] - 1) === 0) u[w + 5]--
  }

  /** Changes node n's score (n found by `find`, dict.slot its slot); returns the node, which may be new. */
  rescore (hd: number, n: number, slot: number, score: number): number {
    if (isPseudo(n)) {
      this.member(n)
      const len = mE - mS
      if (len > tmp.length) tmp = Buffer.alloc(len * 2)
      this.h.b[mA].copy(tmp, 0, mS, mE)
      this.remove(hd, n, slot)
      return this.insert(hd, 0, score, tmp, 0, len)
    }
    const b = this.back(n); const f = this.fwd(n, 0)
    if ((b === 0 || this.score(b) < score) && (f === 0 || this.score(f) > score)) {
      this.h.f64[n >>> 23][offOf(n) >>> 3] = score
      return n
    }
    const hash = this.dict.table(hd) !== 0 ? this.hashAt(hd, slot) : 0
    this.member(n)
    const len = mE - mS
    if (len > tmp.length) tmp = Buffer.alloc(len * 2)
    this.h.b[mA].copy(tmp, 0, mS, mE)
    this.remove(hd, n, slot)
    return this.insert(hd, hash, score, tmp, 0, len)
  }

  private hashAt (hd: number, slot: number): number {
    const t = this.dict.table(hd)
    return this.h.u32[t >>> 23][(offOf(t) >>> 2) + 2 * slot]
  }

  /** 0-based rank of node n. */
  rankOf (hd: number, n: number): number {
    if (isPseudo(n)) return this.pack.rank(n)
    const score = this.score(n)
    this.member(n)
    const b = this.h.b[mA]; const s = mS; const e = mE
    let x = this.head(hd)
    let r = 0
    for (let i = this.u(hd)[this.w(hd) + 5] - 1; i >= 0; i--) {
      for (let f = this.fwd(x, i); f !== 0 && (f === n || this.before(f, score, b, s, e)); f = this.fwd(x, i)) {
        r += this.span(x, i)
        x = f
        if (x === n) return r - 1
      }
    }
    return r - 1
  }

  /** The node at 0-based rank r (0 <= r < count). */
  byRank (hd: number, r: number): number {
    if (this.packed(hd)) return this.pack.byRank(this.u(hd)[this.w(hd)], r)
    let x = this.head(hd)
    let traversed = 0
    r += 1
    for (let i = this.u(hd)[this.w(hd) + 5] - 1; i >= 0; i--) {
      while (this.fwd(x, i) !== 0 && traversed + this.span(x, i) <= r) { traversed += this.span(x, i); x = this.fwd(x, i) }
      if (traversed === r) return x
    }
    return 0
  }

  /** First node with score in range (0 if none). */
  /** A pack's first (or last) entry passing `ok`, scanning in order: ranges over packs are linear. */
  private scan (hd: number, ok: (x: number) => boolean, last: boolean): number {
    let found = 0
    for (let x = this.fwd(this.head(hd), 0); x !== 0; x = this.fwd(x, 0)) {
      if (!ok(x)) continue
      found = x
      if (!last) break
    }
    return found
  }

  firstInScore (hd: number, r: ScoreRange): number {
    if (this.packed(hd)) return this.scan(hd, (x) => gteMin(this.score(x), r) && lteMax(this.score(x), r), false)
    let x = this.head(hd)
    for (let i = this.u(hd)[this.w(hd) + 5] - 1; i >= 0; i--) {
      for (let f = this.fwd(x, i); f !== 0 && !gteMin(this.score(f), r); f = this.fwd(x, i)) x = f
    }
    const n = this.fwd(x, 0)
    return n !== 0 && lteMax(this.score(n), r) ? n : 0
  }

  /** Last node with score in range (0 if none). */
  lastInScore (hd: number, r: ScoreRange): number {
    if (this.packed(hd)) return this.scan(hd, (x) => gteMin(this.score(x), r) && lteMax(this.score(x), r), true)
    let x = this.head(hd)
    for (let i = this.u(hd)[this.w(hd) + 5] - 1; i >= 0; i--) {
      for (let f = this.fwd(x, i); f !== 0 && lteMax(this.score(f), r); f = this.fwd(x, i)) x = f
    }
    return x !== this.head(hd) && gteMin(this.score(x), r) ? x : 0
  }

  /** Node n is at or past the lex bound `min`. */
  lexGteMin (n: number, min: LexBound): boolean {
    if (min.inf !== 0) return min.inf < 0
    this.member(n)
    const c = compareAt(this.h.dv[mA], mS, mE, min.b, min.s, min.e)
    return min.ex ? c > 0 : c >= 0
  }

  lexLteMax (n: number, max: LexBound): boolean {
    if (max.inf !== 0) return max.inf > 0
    this.member(n)
    const c = compareAt(this.h.dv[mA], mS, mE, max.b, max.s, max.e)
    return max.ex ? c < 0 : c <= 0
  }

  firstInLex (hd: number, min: LexBound, max: LexBound): number {
    if (this.packed(hd)) return this.scan(hd, (x) => this.lexGteMin(x, min) && this.lexLteMax(x, max), false)
    let x = this.head(hd)
    for (let i = this.u(hd)[this.w(hd) + 5] - 1; i >= 0; i--) {
      for (let f = this.fwd(x, i); f !== 0 && !this.lexGteMin(f, min); f = this.fwd(x, i)) x = f
    }
    const n = this.fwd(x, 0)
    return n !== 0 && this.lexLteMax(n, max) ? n : 0
  }

  lastInLex (hd: number, min: LexBound, max: LexBound): number {
    if (this.packed(hd)) return this.scan(hd, (x) => this.lexGteMin(x, min) && this.lexLteMax(x, max), true)
    let x = this.head(hd)
    for (let i = this.u(hd)[this.w(hd) + 5] - 1; i >= 0; i--) {
      for (let f = this.fwd(x, i); f !== 0 && this.lexLteMax(f, max); f = this.fwd(x, i)) x = f
    }
    return x !== this.head(hd) && this.lexGteMin(x, min) ? x : 0
  }
}

let tmp = Buffer.alloc(256)
const EMPTY = Buffer.alloc(0)

export function gteMin (v: number, r: ScoreRange): boolean { return r.minex ? v > r.min : v >= r.min }
export function lteMax (v: number, r: ScoreRange): boolean { return r.maxex ? v < r.max : v <= r.max }
