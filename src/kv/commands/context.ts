/**
 * What a command handler sees: the store, the parsed arguments (offsets into the read buffer, so
 * reading them allocates nothing), the reply buffer, its client and the server.
 */
import type { RespParser } from '../resp.ts'
import type { Reply } from '../reply.ts'
import type { Store } from '../store.ts'
import type { Databases } from '../databases.ts'

export interface ClientInfo {
  readonly id: number
  name: string
  /** Set by QUIT: close after the replies are written. */
  closing: boolean
  /** Passed AUTH, or connected while there was no password (as in Redis, it stays so if one is set later). */
  authenticated: boolean
  /** The selected database (SELECT): picks `Ctx.store` for each of its commands. */
  db: number
}

/** The server-wide facts INFO, CONFIG and FLUSHALL need. */
export interface ServerView {
  info (section: string): string
  config: Record<string, string>
  configSet (name: string, value: string): string | null
  /** FLUSHALL: every database. */
  flush (): void
  readonly dbs: Databases
  /** Writes a snapshot; returns an error message or null. */
  save (): string | null
  /** True when there is a password: unauthenticated clients may run only AUTH and QUIT. */
  readonly requirePass: boolean
  authenticate (user: string, password: Buffer): boolean
  /** At shutdown: writes --rdb-out if one is set; returns an error message or null. */
  saveOnShutdown (): string | null
  /** SHUTDOWN: stops the server once this command's turn ends, as SIGTERM does, without saving again. */
  shutdown (): void
}

export const OOM = "OOM command not allowed when used memory > 'maxmemory'."
export const SYNTAX = 'ERR syntax error'
export const NOT_INT = 'ERR value is not an integer or out of range'
export const NOAUTH = 'NOAUTH Authentication required.'
export const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'
/** What `findString` returns for a key of another type. */
export const WRONG = -2
export const DB_RANGE = 'ERR DB index is out of range'
export const WRONG_ARGS = (name: string): string => `ERR wrong number of arguments for '${name}' command`

export class Ctx {
  store: Store
  out: Reply
  client!: ClientInfo
  server: ServerView
  p!: RespParser
  buf: Buffer = Buffer.alloc(0)
  argc = 0

  constructor (store: Store, out: Reply, server: ServerView) {
    this.store = store
    this.out = out
    this.server = server
  }

  bind (p: RespParser, client: ClientInfo): void {
    this.p = p
    this.buf = p.buf
    this.argc = p.argc
    this.client = client
    this.store = this.server.dbs.db(client.db)
  }

  s (i: number): number { return this.p.start[i] }
  e (i: number): number { return this.p.end[i] }

  /**
   * Finds the key in argument i for a string command: its slot, -1 if there is none, or WRONG
   * (having replied WRONGTYPE) if it holds another type. Sets store.seg/off as `find` does.
   */
  findString (i: number): number {
    const slot = this.store.find(this.buf, this.p.start[i], this.p.end[i])
    if (slot >= 0 && this.store.typeOf() !== 0) { this.out.error(WRONGTYPE); return WRONG }
    return slot
  }

  /** Argument i as a string (for options and rare paths only). */
  str (i: number): string {
    return this.buf.toString('utf8', this.p.start[i], this.p.end[i])
  }

  /** A copy of argument i, for values that must outlive the read buffer. */
  copy (i: number): Buffer {
    return Buffer.from(this.buf.subarray(this.p.start[i], this.p.end[i]))
  }

  /** Case-insensitive compare of argument i with a lowercase ASCII word. */
  is (i: number, word: string): boolean {
    const s = this.p.start[i]
    if (this.p.end[i] - s !== word.length) return false
    for (let k = 0; k < word.length; k++) {
      if ((this.buf[s + k] | 0x20) !== word.charCodeAt(k)) return false
    }
    return true
  }

  /** Argument i as a strict integer (Redis string2ll rules), or null. */
  int (i: number): bigint | null {
    return parseInteger(this.buf, this.p.start[i], this.p.end[i])
  }

  /** Argument i as a safe JS integer, or null. */
  num (i: number): number | null {
    const s = this.p.start[i]
    const e = this.p.end[i]
    // Up to 15 characters the value is exact as a number: no BigInt on the common path.
    if (e - s < 16) return parseShortInteger(this.buf, s, e)
    const v = this.int(i)
    if (v === null || v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) return null
    return Number(v)
  }
}

const MIN64 = -(2n ** 63n)
const MAX64 = 2n ** 63n - 1n

/** Redis's integer syntax (string2ll) as a number, exact up to 15 characters; null if not an integer. */
function parseShortInteger (b: Uint8Array, s: number, e: number): number | null {
  if (s === e) return null
  let p = s
  if (b[p] === 45) { p++; if (p === e) return null }
  if (b[p] === 48 && (e - p > 1 || p > s)) return null
  let n = 0
  for (let i = p; i < e; i++) {
    const c = b[i]
    if (c < 48 || c > 57) return null
    n = n * 10 + (c - 48)
  }
  return p > s ? -n : n
}

/** Parses a signed 64-bit decimal with no sign '+', spaces or leading zeros, as Redis does. */
export function parseInteger (b: Uint8Array, s: number, e: number): bigint | null {
  const len = e - s
  if (len > 20) return null
  // The short parser checks the syntax at any length; its value is exact below 16 characters.
  const n = parseShortInteger(b, s, e)
  if (n === null) return null
  if (len < 16) return BigInt(n)
  const v = BigInt(Buffer.from(b.subarray(s, e)).toString('latin1'))
  return v < MIN64 || v > MAX64 ? null : v
}
