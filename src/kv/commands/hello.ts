/** HELLO (protocol 2 or 3, with AUTH and SETNAME) and RESET, with Redis 7.2's replies and errors. */
import { hubOf, sessionOf } from '../session.ts'
import type { Ctx } from './context.ts'
import type { Command } from './types.ts'

/** The version HELLO reports; INFO's redis_version says the same. */
const VERSION = '7.0.0'

/** Redis's rule for client names: printable ASCII, no spaces. */
export function validClientName (name: Buffer): boolean {
  for (const b of name) if (b < 33 || b > 126) return false
  return true
}

/** Parses HELLO's options; returns an error, or what to do. */
function helloOptions (c: Ctx): string | { ver: 2 | 3 | null, user?: string, pass?: Buffer, name?: Buffer } {
  let ver: 2 | 3 | null = null
  if (c.argc >= 2) {
    const v = c.int(1)
    if (v === null) return 'ERR Protocol version is not an integer or out of range'
    if (v !== 2n && v !== 3n) return 'NOPROTO unsupported protocol version'
    ver = v === 3n ? 3 : 2
  }
  const o: { ver: 2 | 3 | null, user?: string, pass?: Buffer, name?: Buffer } = { ver }
  for (let j = 2; j < c.argc; j++) {
    const more = c.argc - 1 - j
    if (c.is(j, 'auth') && more >= 2) {
      o.user = c.str(j + 1)
      o.pass = c.copy(j + 2)
      j += 2
    } else if (c.is(j, 'setname') && more >= 1) {
      o.name = c.copy(j + 1)
      j++
    } else {
      return `ERR Syntax error in HELLO option '${c.str(j)}'`
    }
  }
  return o
}

function hello (c: Ctx): void {
  const s = sessionOf(c)
  const o = helloOptions(c)
  if (typeof o === 'string') { c.out.error(o); return }
  if (o.user !== undefined) {
    if (!c.server.authenticate(o.user, o.pass as Buffer)) {
      c.out.error('WRONGPASS invalid username-password pair or user is disabled.')
      return
    }
    s.authenticated = true
  }
  if (!s.authenticated && c.server.requirePass) {
    c.out.error('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time')
    return
  }
  if (o.name !== undefined) {
    if (!validClientName(o.name)) { c.out.error('ERR Client names cannot contain spaces, newlines or special characters.'); return }
    s.name = o.name.toString('latin1')
  }
  if (o.ver !== null) s.resp = o.ver
  c.out.resp = s.resp
  c.out.map(7)
  const field = (k: string, v: string | number): void => {
    c.out.bulkString(k)
    if (typeof v === 'number') c.out.int(v)
    else c.out.bulkString(v)
  }
  field('server', 'redis')
  field('version', VERSION)
  field('proto', s.resp)
  field('id', s.id)
  field('mode', 'standalone')
  field('role', 'master')
  c.out.bulkString('modules')
  c.out.arrayHeader(0)
}

/** Back to a fresh connection's state: no MULTI, WATCH, subscription, name; RESP2, database 0. */
function reset (c: Ctx): void {
  const s = sessionOf(c)
  const h = hubOf(c)
  s.tx = null
  h.watches.unwatchAll(s)
  h.pubsub.drop(s)
  s.resp = 2
  c.out.resp = 2
  s.db = 0
  s.name = ''
  s.authenticated = !c.server.requirePass
  c.out.simple('RESET')
}

export const helloCommands: Command[] = [
  { name: 'hello', arity: -1, flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'sentinel', 'allow_busy'], keys: [0, 0, 0], run: hello, noAuth: true },
  { name: 'reset', arity: 1, flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'], keys: [0, 0, 0], run: reset, noAuth: true }
]
