/** OBJECT (ENCODING, FREQ, IDLETIME, REFCOUNT, HELP) and FUNCTION FLUSH, which Redis's test harness calls. */
import { typeOps } from '../store.ts'
import { STRING_RAW } from '../segments.ts'
import { parseInteger, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { configValue } from './server.ts'
import { collectionEncoding } from '../types/encoding.ts'

/** A string's encoding as Redis reports it: int for a 64-bit integer, embstr up to 44 bytes, else raw. */
function stringEncoding (b: Buffer, s: number, e: number): string {
  if (e - s <= 20 && parseInteger(b, s, e) !== null) return 'int'
  return e - s <= 44 ? 'embstr' : 'raw'
}

const HELP = [
  'OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'ENCODING <key>',
  '    Return the kind of internal representation used in order to store the value',
  '    associated with a <key>.',
  'FREQ <key>',
  '    Return the access frequency index of the <key>. The returned integer is',
  '    proportional to the logarithm of the recent access frequency of the key.',
  'IDLETIME <key>',
  '    Return the idle time of the <key>, that is the approximated number of',
  '    seconds elapsed since the last access to the key.',
  'REFCOUNT <key>',
  '    Return the number of references of the value associated with the specified',
  '    <key>.',
  'HELP',
  '    Print this help.'
]

/** A collection's encoding as Redis would choose it under this server's CONFIG thresholds. */
function typeEncoding (c: Ctx, type: number): string {
  const { seg, off } = c.store
  if (type < 1 || type > 4) return typeOps[type]?.encoding?.(c.store, seg, off) ?? 'unknown'
  return collectionEncoding(c.store, seg, off, type, (name) => Number(configValue(c.server, name)))
}

function object (c: Ctx): void {
  if (c.argc === 2 && c.is(1, 'help')) {
    c.out.arrayHeader(HELP.length)
    for (const line of HELP) c.out.simple(line)
    return
  }
  const sub = ['encoding', 'freq', 'idletime', 'refcount'].find((s) => c.is(1, s))
  if (sub === undefined || c.argc !== 3) {
    c.out.error(`ERR unknown subcommand or wrong number of arguments for '${c.str(1)}'. Try OBJECT HELP.`)
    return
  }
  const store = c.store
  if (store.find(c.buf, c.s(2), c.e(2)) < 0) { c.out.nil(); return }
  const { seg, off } = store
  if (sub === 'encoding') {
    const type = seg.type(off)
    const vs = seg.valStart(off)
    const raw = type === 0 && (seg.tag(off) & STRING_RAW) !== 0
    c.out.bulkString(raw ? 'raw' : type === 0 ? stringEncoding(seg.bytes, vs, vs + seg.valLen(off)) : typeEncoding(c, type))
  } else if (sub === 'freq') {
    // Only the noeviction policy exists here, so no access frequency is kept: Redis's answer for a non-LFU policy.
    c.out.error('ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.')
  } else if (sub === 'idletime') {
    // No access times are kept (they would cost a write per read); 0 says "just used".
    c.out.int(0)
  } else {
    c.out.int(1)
  }
}

/** MEMORY USAGE key [SAMPLES n]: the bytes of its record plus its index slot (a type may count what its record points at). */
function memory (c: Ctx): void {
  if (c.is(1, 'usage') && (c.argc === 3 || (c.argc === 5 && c.is(3, 'samples')))) {
    const store = c.store
    if (store.find(c.buf, c.s(2), c.e(2)) < 0) { c.out.nil(); return }
    const { seg, off } = store
    c.out.int(seg.recSize(off) + 16 + (typeOps[seg.type(off)]?.extraBytes?.(store, seg, off) ?? 0))
  } else {
    c.out.error(`ERR unknown subcommand or wrong number of arguments for '${c.str(1)}'. Try MEMORY HELP.`)
  }
}

function fn (c: Ctx): void {
  if (c.is(1, 'flush') && c.argc <= 3) c.out.ok()
  else if (c.is(1, 'list') && c.argc === 2) c.out.arrayHeader(0)
  else c.out.error('ERR Functions are not supported by pagegift-kv (scripting is left for later)')
}

export const objectCommands: Command[] = [
  { name: 'object', arity: -2, flags: ['readonly'], keys: [2, 2, 1], run: object },
  { name: 'memory', arity: -2, flags: ['readonly'], keys: [0, 0, 0], run: memory },
  { name: 'function', arity: -2, flags: ['noscript'], keys: [0, 0, 0], run: fn }
]
