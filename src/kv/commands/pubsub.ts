/**
 * Pub/sub: SUBSCRIBE, PSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH and PUBSUB. A message is encoded
 * once per protocol and added to each receiver's output (see Conn.deliver), so a publisher's
 * message is in its subscribers' output before the PUBLISH reply leaves: a live upgrade that
 * quiesces after it moves that output with the connection, and none is lost.
 */
import { Glob } from '../glob.ts'
import { hubOf, sessionOf, type Session } from '../session.ts'
import { silenced } from '../client-reply.ts'
import { Reply } from '../reply.ts'
import type { Ctx } from './context.ts'
import type { Command } from './types.ts'

interface Pattern { glob: Glob, bytes: Buffer, sessions: Set<Session> }

/** A RESP2 array or RESP3 push of bulk strings. */
function message (resp: 2 | 3, parts: Buffer[]): Buffer {
  const out: Buffer[] = [Buffer.from(`${resp === 3 ? '>' : '*'}${parts.length}\r\n`)]
  for (const p of parts) out.push(Buffer.from(`$${p.length}\r\n`), p, Buffer.from('\r\n'))
  return Buffer.concat(out)
}

declare module '../session.ts' {
  /** The channels' and patterns' registry, which this module owns (session.ts does not import it). */
  interface Hub { readonly pubsub: PubSub }
}

export class PubSub {
  readonly channels = new Map<string, Set<Session>>()
  readonly patterns = new Map<string, Pattern>()

  subscribe (s: Session, name: string): void {
    if (s.channels.has(name)) return
    s.channels.add(name)
    let set = this.channels.get(name)
    if (set === undefined) this.channels.set(name, set = new Set())
    set.add(s)
  }

  unsubscribe (s: Session, name: string): boolean {
    if (!s.channels.delete(name)) return false
    const set = this.channels.get(name)
    set?.delete(s)
    if (set?.size === 0) this.channels.delete(name)
    return true
  }

  psubscribe (s: Session, name: string): void {
    if (s.patterns.has(name)) return
    s.patterns.add(name)
    let p = this.patterns.get(name)
    if (p === undefined) {
      const bytes = Buffer.from(name, 'latin1')
      this.patterns.set(name, p = { glob: Glob.compile(bytes), bytes, sessions: new Set() })
    }
    p.sessions.add(s)
  }

  punsubscribe (s: Session, name: string): boolean {
    if (!s.patterns.delete(name)) return false
    const p = this.patterns.get(name)
    p?.sessions.delete(s)
    if (p?.sessions.size === 0) this.patterns.delete(name)
    return true
  }

  /** A closed client leaves every channel and pattern. */
  drop (s: Session): void {
    for (const name of [...s.channels]) this.unsubscribe(s, name)
    for (const name of [...s.patterns]) this.punsubscribe(s, name)
  }

  /** Delivers `payload` on `channel` to every subscriber; returns how many received it. */
  publish (channel: Buffer, payload: Buffer): number {
    let n = 0
    const subs = this.channels.get(channel.toString('latin1'))
    if (subs !== undefined) {
      const kind = Buffer.from('message')
      const wire = [message(2, [kind, channel, payload]), message(3, [kind, channel, payload])]
      for (const s of subs) s.deliver(wire[s.resp - 2])
      n += subs.size
    }
    for (const p of this.patterns.values()) {
      if (!p.glob.matches(channel)) continue
      const kind = Buffer.from('pmessage')
      const wire = [message(2, [kind, p.bytes, channel, payload]), message(3, [kind, p.bytes, channel, payload])]
      for (const s of p.sessions) s.deliver(wire[s.resp - 2])
      n += p.sessions.size
    }
    return n
  }
}

/** One (un)subscribe confirmation: kind, name (or null), the client's subscription count. */
function confirm (c: Ctx, kind: string, name: string | null): void {
  const s = sessionOf(c)
  // A client under CLIENT REPLY OFF or SKIP still gets it, as in Redis 7.2: out of band.
  const out = silenced(s) ? new Reply(256) : c.out
  out.resp = c.out.resp
  out.push(3)
  out.bulkString(kind)
  if (name === null) out.nil()
  else { const b = Buffer.from(name, 'latin1'); out.bulk(b, 0, b.length) }
  out.int(s.channels.size + s.patterns.size)
  if (out !== c.out) s.deliver(out.take())
}

function subscribe (c: Ctx, pattern: boolean): void {
  const s = sessionOf(c)
  const ps = hubOf(c).pubsub
  for (let i = 1; i < c.argc; i++) {
    const name = c.buf.toString('latin1', c.s(i), c.e(i))
    if (pattern) ps.psubscribe(s, name)
    else ps.subscribe(s, name)
    confirm(c, pattern ? 'psubscribe' : 'subscribe', name)
  }
}

/** Without arguments: from every channel (or pattern); with none to leave, one reply with a null name. */
function unsubscribe (c: Ctx, pattern: boolean): void {
  const s = sessionOf(c)
  const ps = hubOf(c).pubsub
  const kind = pattern ? 'punsubscribe' : 'unsubscribe'
  const names = c.argc > 1
    ? Array.from({ length: c.argc - 1 }, (_, i) => c.buf.toString('latin1', c.s(i + 1), c.e(i + 1)))
    : [...(pattern ? s.patterns : s.channels)]
  if (names.length === 0) { confirm(c, kind, null); return }
  for (const name of names) {
    if (pattern) ps.punsubscribe(s, name)
    else ps.unsubscribe(s, name)
    confirm(c, kind, name)
  }
}

function publish (c: Ctx): void {
  c.out.int(hubOf(c).pubsub.publish(c.copy(1), c.copy(2)))
}

function pubsub (c: Ctx): void {
  const ps = hubOf(c).pubsub
  if (c.is(1, 'channels') && c.argc <= 3) {
    const glob = c.argc === 3 ? Glob.compile(c.buf, c.s(2), c.e(2)) : null
    const names = [...ps.channels.keys()].map((n) => Buffer.from(n, 'latin1')).filter((b) => glob === null || glob.matches(b))
    c.out.arrayHeader(names.length)
    for (const b of names) c.out.bulk(b, 0, b.length)
  } else if (c.is(1, 'numsub')) {
    c.out.arrayHeader(2 * (c.argc - 2))
    for (let i = 2; i < c.argc; i++) {
      c.out.bulk(c.buf, c.s(i), c.e(i))
      c.out.int(ps.channels.get(c.buf.toString('latin1', c.s(i), c.e(i)))?.size ?? 0)
    }
  } else if (c.is(1, 'numpat') && c.argc === 2) {
    c.out.int(ps.patterns.size)
  } else {
    c.out.error(`ERR unknown subcommand or wrong number of arguments for '${c.str(1)}'. Try PUBSUB HELP.`)
  }
}

const flags = ['pubsub', 'noscript', 'loading', 'stale']
export const pubsubCommands: Command[] = [
  { name: 'subscribe', arity: -2, flags, keys: [0, 0, 0], run: (c) => subscribe(c, false) },
  { name: 'psubscribe', arity: -2, flags, keys: [0, 0, 0], run: (c) => subscribe(c, true) },
  { name: 'unsubscribe', arity: -1, flags, keys: [0, 0, 0], run: (c) => unsubscribe(c, false) },
  { name: 'punsubscribe', arity: -1, flags, keys: [0, 0, 0], run: (c) => unsubscribe(c, true) },
  { name: 'publish', arity: 3, flags: ['pubsub', 'loading', 'stale', 'fast', 'may_replicate'], keys: [0, 0, 0], run: publish },
  { name: 'pubsub', arity: -2, flags: ['pubsub', 'loading', 'stale'], keys: [0, 0, 0], run: pubsub }
]
