/**
 * Checks and shapes for the collections the RDB reader decodes: members are unique, hashes and zsets
 * come in pairs, scores are numbers. A file that breaks them is corrupt, whatever encoding it used.
 */
import { rdbError } from './errors.ts'

/** A score as Redis writes it in text (old zsets, ziplists, listpacks): a number, inf or -inf. */
export function parseScore (b: Buffer, at: number): number {
  const s = b.toString('latin1')
  const x = /^[+-]?inf$/i.test(s) ? (s[0] === '-' ? -Infinity : Infinity) : Number(s)
  if (s === '' || Number.isNaN(x) || /\s/.test(s)) throw rdbError('ERR_RDB_CORRUPT', `zset score '${s.slice(0, 40)}' is not a number`, at)
  return x
}

/** Refuses a collection whose members repeat (a set, a hash's fields, a zset's members). */
export function unique (xs: Buffer[], at: number): Buffer[] {
  const seen = new Set<string>()
  for (const x of xs) {
    const k = x.toString('latin1')
    if (seen.has(k)) throw rdbError('ERR_RDB_CORRUPT', 'duplicate member in a set, hash or zset', at)
    seen.add(k)
  }
  return xs
}

/** A hash's flat field, value list as pairs; an odd count or a repeated field is corrupt. */
export function pairs (xs: Buffer[], at: number): Array<[Buffer, Buffer]> {
  if (xs.length % 2 !== 0) throw rdbError('ERR_RDB_CORRUPT', 'hash with an odd number of entries', at)
  const out: Array<[Buffer, Buffer]> = []
  for (let i = 0; i < xs.length; i += 2) out.push([xs[i], xs[i + 1]])
  unique(out.map((p) => p[0]), at)
  return out
}

/** A zset's flat member, score list as pairs; an odd count, a bad score or a repeated member is corrupt. */
export function scored (xs: Buffer[], at: number): Array<[Buffer, number]> {
  if (xs.length % 2 !== 0) throw rdbError('ERR_RDB_CORRUPT', 'zset with an odd number of entries', at)
  const out: Array<[Buffer, number]> = []
  for (let i = 0; i < xs.length; i += 2) out.push([xs[i], parseScore(xs[i + 1], at)])
  unique(out.map((p) => p[0]), at)
  return out
}
