/**
 * A client's connection state beyond its query buffer: protocol version, transaction, watched keys,
 * subscriptions and blocked command. The commands of multi.ts, pubsub.ts, blocking.ts and hello.ts
 * see it through `sessionOf(c)`, and the server-wide registries through `hubOf(c)`; conn.ts
 * implements it. All of it is small and travels with the client in a live upgrade (handover.ts).
 */
import type { ClientInfo, Ctx } from './commands/context.ts'
import type { Command } from './commands/types.ts'

/** A MULTI in progress: the queued commands (each RESP-encoded), and whether one failed to queue. */
export interface Transaction {
  commands: Buffer[]
  failed: boolean
}

/** A WATCHed key: its database, its bytes, and its expiry time when watched (0: none, or no key). */
export interface WatchedKey {
  id: string
  db: number
  key: Buffer
  expireAt: number
}

export type Kind = 'blpop' | 'brpop' | 'blmove' | 'bzpopmin' | 'bzpopmax' | 'blmpop' | 'bzmpop'

/** A parsed blocking command: its source keys, for BLMOVE the destination and both ends, for B[LZ]MPOP the count. */
export interface Spec { kind: Kind, keys: Buffer[], dest?: Buffer, fromLeft: boolean, toLeft: boolean, timeout: Buffer, count?: number }

export interface Waiter {
  session: Session
  spec: Spec
  /** The command's arguments, as the client sent them: what a live upgrade carries. */
  argv: Buffer[]
  db: number
  ids: string[]
  /** Epoch ms; 0 waits forever. */
  deadline: number
  timer: NodeJS.Timeout | null
}

export interface Session extends ClientInfo {
  resp: 2 | 3
  db: number
  tx: Transaction | null
  watched: WatchedKey[]
  /** A watched key was touched: the next EXEC fails. */
  watchDirty: boolean
  /** Subscribed channels and patterns, as latin1 strings (binary safe). */
  channels: Set<string>
  patterns: Set<string>
  blocked: Waiter | null
  /** Commands that came with a command that blocked, RESP-encoded: they run once it is answered. */
  held: Buffer[]
  /** Set while EXEC runs the queued commands: blocking commands do not block there. */
  inExec: boolean
  /** CLIENT REPLY's mode (client-reply.ts): 0 while every reply is sent. */
  replyMode: number
  /** Out-of-band bytes for this client (pub/sub messages, a blocked command's answer). */
  deliver (bytes: Buffer): void
  /** A blocked command was answered (or timed out): run what the client sent meanwhile. */
  unblocked (): void
}

/**
 * The server-wide registries, and the command table's entry points (here so that command modules
 * need not import the table that lists them). Each registry is added to this interface by the
 * module that owns it (multi.ts: watches, pubsub.ts: pubsub, blocking.ts: blocking), so this file
 * imports none of them and they can all import it.
 */
export interface Hub {
  dispatch (c: Ctx): void
  lookup (c: Ctx): Command | undefined
}

export function sessionOf (c: Ctx): Session {
  return c.client as Session
}

export function hubOf (c: Ctx): Hub {
  return (c.server as unknown as { hub: Hub }).hub
}

/** The registry key of `key` in database `db`: one string, binary safe. */
export function keyId (db: number, b: Buffer, s: number, e: number): string {
  return String(db) + ':' + b.toString('latin1', s, e)
}

/** Encodes one command (or a state record) as a RESP array of bulk strings. */
export function encodeArgs (args: (Buffer | string)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** The parsed command in `c` as a RESP buffer of its own (to queue or hold it past this read). */
export function encodeCommand (c: Ctx): Buffer {
  const args: Buffer[] = []
  for (let i = 0; i < c.argc; i++) args.push(c.buf.subarray(c.s(i), c.e(i)))
  return encodeArgs(args)
}
