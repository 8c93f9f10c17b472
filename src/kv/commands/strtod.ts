/**
 * SORT's numeric weights as Redis reads them: C's strtod (glibc, C locale) on the value as a C string,
 * refused when anything is left after the number, when it over- or underflows (ERANGE) or is NaN.
 * So " 10" and "0x1p4" and "" (0) are weights, "10 " and "1e400" and "nan" are not.
 */

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
const HEX = /^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?$/
const INF = /^[+-]?inf(inity)?$/i
/** Below this, glibc's strtod reports ERANGE (an inexact subnormal or a lost nonzero). */
const DBL_MIN = 2.2250738585072014e-308

function isSpace (b: number): boolean {
  return b === 32 || (b >= 9 && b <= 13)
}

/** The weight in `b[s, e)`, or NaN if SORT would answer "One or more scores can't be converted into double". */
export function sortWeight (b: Buffer, s: number, e: number): number {
  // Redis hands strtod a C string: it ends at the first NUL.
  const nul = b.indexOf(0, s)
  if (nul >= 0 && nul < e) e = nul
  if (s === e) return 0
  let p = s
  while (p < e && isSpace(b[p])) p++
  const text = b.toString('latin1', p, e)
  if (INF.test(text)) return text[0] === '-' ? -Infinity : Infinity
  if (DECIMAL.test(text)) return checkRange(Number(text), /[1-9]/.test(text.replace(/[eE].*$/, '')))
  const hex = HEX.exec(text)
  if (hex !== null) return hexWeight(hex)
  return NaN
}

/** C's ERANGE cases: a finite literal that overflows, or a nonzero one that underflows. */
function checkRange (v: number, nonzero: boolean): number {
  if (!Number.isFinite(v)) return NaN
  if (nonzero && Math.abs(v) < DBL_MIN) return NaN
  return v
}

function hexWeight (m: RegExpExecArray): number {
  const int = m[2]
  const frac = m[3] ?? ''
  if (int.length + frac.length === 0) return NaN
  const digits = (int + frac).replace(/^0+/, '')
  if (digits === '') return m[1] === '-' ? -0 : 0
  // Scale by the binary exponent in steps, so a long mantissa does not overflow on the way.
  let v = Number(BigInt('0x' + digits))
  let exp = Number(m[4] ?? '0') - 4 * frac.length
  if (!Number.isFinite(exp)) return NaN
  while (exp > 0 && Number.isFinite(v)) { const k = Math.min(exp, 1000); v *= 2 ** k; exp -= k }
  while (exp < 0 && v !== 0) { const k = Math.min(-exp, 1000); v /= 2 ** k; exp += k }
  return checkRange(m[1] === '-' ? -v : v, true)
}
