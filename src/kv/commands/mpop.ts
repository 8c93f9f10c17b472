/**
 * LMPOP and ZMPOP (Redis 7.0): pop up to COUNT elements from the first non-empty key of several,
 * replying [key, elements]. Their blocking forms, BLMPOP and BZMPOP, use this module's parser and
 * pop through commands/blocking.ts.
 */
import { hubOf, keyId, sessionOf, type Spec } from '../session.ts'
import { T_LIST, T_ZSET } from '../types/access.ts'
import { WRONGTYPE, type Ctx } from './context.ts'
import { listLength, listPop } from './list.ts'
import { zsetPop } from './zset.ts'
import type { Command } from './types.ts'
import { NOTIFY_LIST, NOTIFY_ZSET, notifyPop } from '../notify.ts'

/** A positive integer argument as Redis's getRangeLongFromObjectOrReply(1, LONG_MAX) reads it, or null. */
function positive (b: Buffer): number | null {
  const s = b.toString('latin1')
  if (!/^(-?[1-9]\d{0,18}|0)$/.test(s)) return null
  const v = Number(s)
  return v >= 1 && BigInt(s) <= 9223372036854775807n ? v : null
}

/**
 * Parses [B]LMPOP / [B]ZMPOP from numkeys (argument `at`): the keys, the end (LEFT/MIN as fromLeft),
 * COUNT (1 if absent). Returns Redis's error text for bad arguments.
 */
export function parseMpop (argv: Buffer[], at: number): Spec | string {
  const name = argv[0].toString('latin1').toLowerCase()
  const zset = name.endsWith('zmpop')
  const numkeys = positive(argv[at])
  if (numkeys === null) return 'ERR numkeys should be greater than 0'
  const whereAt = at + numkeys + 1
  if (whereAt >= argv.length) return 'ERR syntax error'
  const where = argv[whereAt].toString('latin1').toLowerCase()
  const ends = zset ? ['min', 'max'] : ['left', 'right']
  if (!ends.includes(where)) return 'ERR syntax error'
  let count = -1
  for (let j = whereAt + 1; j < argv.length; j++) {
    if (count === -1 && argv[j].toString('latin1').toLowerCase() === 'count' && j + 1 < argv.length) {
      const n = positive(argv[++j])
      if (n === null) return 'ERR count should be greater than 0'
      count = n
    } else {
      return 'ERR syntax error'
    }
  }
  const kind = zset ? 'bzmpop' : 'blmpop'
  return { kind, keys: argv.slice(at + 1, whereAt), fromLeft: where === ends[0], toLeft: false, timeout: argv[1], count: count === -1 ? 1 : count }
}

/** 'none', 'list', 'zset' or 'other' for the key. */
export function keyType (c: Ctx, key: Buffer): string {
  if (c.store.find(key, 0, key.length) < 0) return 'none'
  const t = c.store.typeOf()
  return t === T_LIST ? 'list' : t === T_ZSET ? 'zset' : 'other'
}

/** Pops up to spec.count from `key` and replies [key, elements]; false if it had nothing to pop. */
export function mpopInto (c: Ctx, spec: Spec, key: Buffer): boolean {
  const n = spec.count ?? 1
  if (spec.kind === 'bzmpop') {
    const got: Array<[Buffer, number]> = []
    while (got.length < n) {
      const r = zsetPop(c.store, key, 0, key.length, !spec.fromLeft)
      if (r === null || typeof r === 'string') break
      got.push(r)
    }
    if (got.length === 0) return false
    notifyPop(c, NOTIFY_ZSET, spec.fromLeft ? 'zpopmin' : 'zpopmax', key)
    c.out.arrayHeader(2)
    c.out.bulk(key, 0, key.length)
    c.out.arrayHeader(got.length)
    for (const [member, score] of got) {
      c.out.arrayHeader(2)
      c.out.bulk(member, 0, member.length)
      c.out.double(score)
    }
  } else {
    const len = Math.min(n, listLength(c.store, key, 0, key.length))
    if (len <= 0) return false
    c.out.arrayHeader(2)
    c.out.bulk(key, 0, key.length)
    c.out.arrayHeader(len)
    for (let i = 0; i < len; i++) {
      const v = listPop(c.store, key, 0, key.length, spec.fromLeft) as Buffer
      c.out.bulk(v, 0, v.length)
    }
    notifyPop(c, NOTIFY_LIST, spec.fromLeft ? 'lpop' : 'rpop', key)
  }
  hubOf(c).watches.touch(keyId(sessionOf(c).db, key, 0, key.length))
  return true
}

/** LMPOP / ZMPOP: the first key with something pops; null array if none has. */
function mpop (c: Ctx): void {
  const argv = Array.from({ length: c.argc }, (_, i) => c.copy(i))
  const spec = parseMpop(argv, 1)
  if (typeof spec === 'string') { c.out.error(spec); return }
  const want = spec.kind === 'bzmpop' ? 'zset' : 'list'
  for (const key of spec.keys) {
    const t = keyType(c, key)
    if (t === 'none') continue
    if (t !== want) { c.out.error(WRONGTYPE); return }
    if (mpopInto(c, spec, key)) return
  }
  c.out.nilArray()
}

// Keys are found through numkeys (Redis's movablekeys): COMMAND reports 0 0 0, and the pops touch WATCH themselves.
export const mpopCommands: Command[] = [
  { name: 'lmpop', arity: -4, flags: ['write'], keys: [0, 0, 0], run: mpop },
  { name: 'zmpop', arity: -4, flags: ['write'], keys: [0, 0, 0], run: mpop }
]
