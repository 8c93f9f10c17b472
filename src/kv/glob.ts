/**
 * Redis glob matching (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes) on bytes, as KEYS, SCAN MATCH and
 * CONFIG GET use it. A pattern is compiled once into tokens and run as an NFA: every input byte
 * advances the set of live token positions, so a match costs at most (key bytes x tokens) steps,
 * whatever the pattern. A backtracking matcher, as Redis had before CVE-2022-36021, takes time
 * exponential in the number of stars (`*a*a*a*...*b` against a long run of `a`).
 *
 * The semantics are those of Redis 7's `stringmatchlen`, quirks included:
 * - an empty key matches only the empty pattern (`*` does not match it; KEYS and SCAN short-circuit
 *   the bare `*` before the matcher, and so do we);
 * - a class ends at the first `]` not escaped; `[a-]` is the range a..`]`; an unterminated class runs
 *   to the end of the pattern; `[]` matches nothing and `[^]` anything;
 * - inside a class with nocase, an escaped byte compares case-sensitively, as in Redis;
 * - a trailing lone `\` is a literal backslash.
 * Redis also gives up (no match) past 1000 nested stars to bound its recursion; there is no
 * recursion here, so no such cut.
 */

const STAR = 0
const ANY = 1
const LITERAL = 2
const CLASS = 3

const lower = (c: number): number => (c >= 65 && c <= 90 ? c | 0x20 : c)

export class Glob {
  /** Work done by `matches` so far (live states visited): bounded by key bytes x tokens per call. */
  steps = 0
  /** More nested stars than Redis follows: nothing matches. */
  private tooDeep = false
  private readonly kind: Uint8Array
  /** The byte of a literal (lowercased with nocase), or the class number. */
  private readonly arg: Int32Array
  /** 256-bit membership table per class, negation already applied. */
  private readonly classes: Uint32Array
  private readonly n: number
  private readonly nocase: boolean
  private readonly emptyPattern: boolean
  private cur: Int32Array
  private next: Int32Array
  private readonly seen: Int32Array
  private stamp = 0

  private constructor (kind: number[], arg: number[], classes: number[], nocase: boolean, emptyPattern: boolean) {
    this.kind = Uint8Array.from(kind)
    this.arg = Int32Array.from(arg)
    this.classes = Uint32Array.from(classes)
    this.n = kind.length
    this.nocase = nocase
    this.emptyPattern = emptyPattern
    this.cur = new Int32Array(this.n + 1)
    this.next = new Int32Array(this.n + 1)
    this.seen = new Int32Array(this.n + 1)
  }

  /** Compiles pattern `p[ps, pe)`. */
  static compile (p: Uint8Array, ps = 0, pe = p.length, nocase = false): Glob {
    const kind: number[] = []
    const arg: number[] = []
    const classes: number[] = []
    let i = ps
    while (i < pe) {
      const c = p[i]
      if (c === 42) { // '*': a run of stars is one
        if (kind.at(-1) !== STAR) { kind.push(STAR); arg.push(0) }
        i++
      } else if (c === 63) { // '?'
        kind.push(ANY); arg.push(0)
        i++
      } else if (c === 91) { // '['
        kind.push(CLASS); arg.push(classes.length >>> 3)
        i = compileClass(p, i + 1, pe, nocase, classes)
      } else {
        let lit = c
        if (c === 92 && i + 1 < pe) lit = p[++i] // '\' escapes the next byte; a trailing one is itself
        kind.push(LITERAL); arg.push(nocase ? lower(lit) : lit)
        i++
      }
    }
    const g = new Glob(kind, arg, classes, nocase, pe === ps)
    // Redis 7.2's matcher gives up (no match) past 1000 nested stars, as protection against abusive
    // patterns; the same answer here, though this matcher would cope.
    g.tooDeep = kind.filter((k) => k === STAR).length > 1000
    return g
  }

  /** True if `s[ss, se)` matches. */
  matches (s: Uint8Array, ss = 0, se = s.length): boolean {
    if (this.tooDeep) return false
    if (ss >= se) return this.emptyPattern
    let cur = this.cur
    let next = this.next
    this.newSet()
    let live = this.enter(cur, 0, 0)
    for (let i = ss; i < se && live > 0; i++) {
      const c = s[i]
      this.newSet()
      let count = 0
      for (let k = 0; k < live; k++) {
        const j = cur[k]
        if (j === this.n) continue
        if (this.kind[j] === STAR) count = this.enter(next, count, j)
        else if (this.accepts(j, c)) count = this.enter(next, count, j + 1)
      }
      this.steps += live
      const t = cur; cur = next; next = t
      live = count
    }
    for (let k = 0; k < live; k++) if (cur[k] === this.n) return true
    return false
  }

  /** Starts a new state set: a state is in it if `seen` holds the current stamp. */
  private newSet (): void {
    if (++this.stamp === 0x7fffffff) {
      this.seen.fill(0)
      this.stamp = 1
    }
  }

  /** Adds state j (and, past a star, the state after it: a star may match nothing) to `set`. */
  private enter (set: Int32Array, count: number, j: number): number {
    const seen = this.seen
    const stamp = this.stamp
    for (;;) {
      if (seen[j] === stamp) return count
      seen[j] = stamp
      set[count++] = j
      if (j === this.n || this.kind[j] !== STAR) return count
      j++
    }
  }

  private accepts (j: number, c: number): boolean {
    const k = this.kind[j]
    if (k === ANY) return true
    if (k === LITERAL) return this.arg[j] === (this.nocase ? lower(c) : c)
    return (this.classes[(this.arg[j] << 3) + (c >>> 5)] & (1 << (c & 31))) !== 0
  }
}

/**
 * Compiles a class whose body starts at `i` (after '['), by running Redis's class loop for every
 * byte value: the table is then exactly Redis's answer. Returns the offset after the class.
 */
function compileClass (p: Uint8Array, i: number, pe: number, nocase: boolean, classes: number[]): number {
  const not = i < pe && p[i] === 94
  const body = not ? i + 1 : i
  const bits = new Array<number>(8).fill(0)
  let end = body
  for (let c = 0; c < 256; c++) {
    const r = classLoop(p, body, pe, c, nocase)
    end = r.end
    if (r.match !== not) bits[c >>> 5] |= 1 << (c & 31)
  }
  classes.push(...bits)
  return end
}

/** Redis's loop over a class body for byte `c`: whether it matched, and the offset after the class. */
function classLoop (p: Uint8Array, q: number, pe: number, c: number, nocase: boolean): { match: boolean, end: number } {
  let match = false
  for (;;) {
    const left = pe - q
    if (left >= 2 && p[q] === 92) { // '\x' is x, compared as is
      q++
      if (p[q] === c) match = true
    } else if (left > 0 && p[q] === 93) { // ']'
      return { match, end: q + 1 }
    } else if (left <= 0) {
      return { match, end: pe }
    } else if (left >= 3 && p[q + 1] === 45) { // 'a-z', bounds in either order
      let lo = p[q]
      let hi = p[q + 2]
      if (lo > hi) [lo, hi] = [hi, lo]
      const x = nocase ? lower(c) : c
      if (nocase) { lo = lower(lo); hi = lower(hi) }
      if (x >= lo && x <= hi) match = true
      q += 2
    } else if (nocase ? lower(p[q]) === lower(c) : p[q] === c) {
      match = true
    }
    q++
  }
}

