/** Redis glob matching (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes) on bytes, as KEYS and SCAN MATCH use it. */

export function globMatch (p: Uint8Array, ps: number, pe: number, s: Uint8Array, ss: number, se: number): boolean {
  while (ps < pe) {
    const c = p[ps]
    if (c === 42) { // *
      while (ps + 1 < pe && p[ps + 1] === 42) ps++
      if (ps + 1 === pe) return true
      for (let i = ss; i <= se; i++) if (globMatch(p, ps + 1, pe, s, i, se)) return true
      return false
    }
    if (ss >= se) return false
    if (c === 63) { // ?
      ps++; ss++
      continue
    }
    if (c === 91) { // [
      const r = matchClass(p, ps + 1, pe, s[ss])
      if (r < 0) return false
      ps = r; ss++
      continue
    }
    let lit = c
    if (c === 92 && ps + 1 < pe) lit = p[++ps]
    if (lit !== s[ss]) return false
    ps++; ss++
  }
  return ss === se
}

/** Matches byte `ch` against the class starting after '['; returns the offset after ']' or -1. */
function matchClass (p: Uint8Array, ps: number, pe: number, ch: number): number {
  let not = false
  let hit = false
  if (ps < pe && p[ps] === 94) { not = true; ps++ }
  while (ps < pe && p[ps] !== 93) {
    if (p[ps] === 92 && ps + 1 < pe) {
      ps++
      if (p[ps] === ch) hit = true
    } else if (ps + 2 < pe && p[ps + 1] === 45 && p[ps + 2] !== 93) {
      let lo = p[ps]
      let hi = p[ps + 2]
      if (lo > hi) [lo, hi] = [hi, lo]
      if (ch >= lo && ch <= hi) hit = true
      ps += 2
    } else if (p[ps] === ch) hit = true
    ps++
  }
  if (ps < pe) ps++
  return hit !== not ? ps : -1
}
