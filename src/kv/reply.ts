/**
 * Reply writer for RESP2 and RESP3. All replies produced while handling one read from a client go
 * into this one growable buffer, then leave in a single socket write (pipelining without a write
 * per command). The server's buffer serves every client of an event-loop turn: each client's
 * replies leave as a view of it (no copy), and it is written from its start again once all are out.
 * `resp` is the protocol of the client being answered (set before each command): commands call
 * `map`, `double`, `null` and friends and get that protocol's encoding.
 */
import { copyBytes } from './bytes.ts'

const CRLF = 0x0a0d

/** Redis's text for a double (RESP2 bulk, RESP3 `,`): the shortest round-trip form, `inf`, `-inf`, `nan`. */
export function formatDouble (x: number): string {
  if (Number.isNaN(x)) return 'nan'
  if (x === Infinity) return 'inf'
  if (x === -Infinity) return '-inf'
  return Object.is(x, -0) ? '-0' : String(x)
}

/** A fresh reply buffer's size: it grows as needed, and a pinned one is replaced at this size. */
const FRESH = 16 * 1024
const KEEP = 1024 * 1024

export class Reply {
  buf: Buffer
  pos = 0
  /** The protocol of the client being answered: 2, or 3 after HELLO 3. */
  resp: 2 | 3 = 2
  /** Where the bytes not yet handed out by `view` start. */
  private base = 0
  /** A view of this buffer is still held by a socket write that did not complete: never write it again. */
  private pinned = false

  constructor (size = FRESH) {
    this.buf = Buffer.allocUnsafe(size)
  }

  /** Makes room for `n` more bytes. */
  ensure (n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = Buffer.allocUnsafe(size)
    // Bytes before `base` were handed out as views of the old buffer, which keep it alive as is.
    this.buf.copy(next, this.base, this.base, this.pos)
    this.buf = next
  }

  /** Takes the bytes written so far as a fresh Buffer (safe to hand to socket.write) and resets. */
  take (): Buffer {
    const out = Buffer.allocUnsafe(this.pos - this.base)
    this.buf.copy(out, 0, this.base, this.pos)
    this.pos = this.base
    return out
  }

  /** True when bytes were written since the last `view` (or `take`). */
  get pending (): boolean {
    return this.pos > this.base
  }

  /**
   * The bytes written since the last `view`, without a copy: a view that stays valid (those bytes
   * are not written again) until `recycle`. One reply buffer serves every read of an event-loop turn.
   */
  view (): Buffer {
    return this.buf.subarray(this.claim(), this.pos)
  }

  /** As `view`, without making one: returns where the bytes start in `buf`; they end at `pos`. */
  claim (): number {
    const start = this.base
    this.base = this.pos
    return start
  }

  /** A view was given to a write that is still pending: the buffer is left to it, and a fresh one is used. */
  pin (): void {
    this.pinned = true
  }

  /** Every view has been written (or pinned): the buffer is written from its start again. */
  recycle (): void {
    if (this.pos !== this.base) return
    // A buffer that grew for one big reply is not kept for small ones.
    if (this.pinned || this.buf.length > KEEP) {
      this.buf = Buffer.allocUnsafe(FRESH)
      this.pinned = false
    }
    this.pos = this.base = 0
  }

  /** Drops a partial reply, back to `mark` (from `this.pos` earlier). */
  rewind (mark: number): void {
    this.pos = mark
  }

  /** Bytes already encoded (a pub/sub message, another reply). */
  append (b: Buffer): void {
    this.ensure(b.length)
    this.pos += b.copy(this.buf, this.pos)
  }

  raw (s: string): void {
    this.ensure(s.length * 3)
    this.pos += this.buf.write(s, this.pos, 'latin1')
  }

  ok (): void {
    this.ensure(5)
    const b = this.buf
    const p = this.pos
    b[p] = 43 // +OK\r\n
    b[p + 1] = 79
    b[p + 2] = 75
    b[p + 3] = 13
    b[p + 4] = 10
    this.pos = p + 5
  }

  simple (s: string): void {
    this.raw('+' + s + '\r\n')
  }

  /** `msg` starts with the error code, e.g. 'ERR syntax error' or 'WRONGTYPE ...'. */
  error (msg: string): void {
    this.raw('-' + msg + '\r\n')
  }

  /** A null bulk string (RESP3: the null type). */
  nil (): void {
    if (this.resp === 3) { this.raw('_\r\n'); return }
    this.ensure(5)
    const b = this.buf
    const p = this.pos
    b[p] = 36 // $-1\r\n
    b[p + 1] = 45
    b[p + 2] = 49
    b[p + 3] = 13
    b[p + 4] = 10
    this.pos = p + 5
  }

  /** A null array (RESP3: the null type). */
  nilArray (): void {
    this.raw(this.resp === 3 ? '_\r\n' : '*-1\r\n')
  }

  /** The null of either protocol: `$-1` in RESP2, `_` in RESP3. */
  null (): void {
    this.nil()
  }

  /** A map of `n` key/value pairs: RESP3 `%n`, RESP2 a flat array of 2n items. */
  map (n: number): void {
    if (this.resp === 3) this.raw('%' + String(n) + '\r\n')
    else this.arrayHeader(2 * n)
  }

  /** A set of `n` members: RESP3 `~n`, RESP2 an array. */
  set (n: number): void {
    if (this.resp === 3) this.raw('~' + String(n) + '\r\n')
    else this.arrayHeader(n)
  }

  /** An out-of-band message (pub/sub) of `n` items: RESP3 `>n`, RESP2 an array. */
  push (n: number): void {
    if (this.resp === 3) this.raw('>' + String(n) + '\r\n')
    else this.arrayHeader(n)
  }

  /** A double: RESP3 `,x`, RESP2 a bulk string of the same text. */
  double (x: number): void {
    if (this.resp === 3) this.raw(',' + formatDouble(x) + '\r\n')
    else this.bulkString(formatDouble(x))
  }

  /** A boolean: RESP3 `#t`/`#f`, RESP2 the integers 1 and 0. */
  bool (b: boolean): void {
    if (this.resp === 3) this.raw(b ? '#t\r\n' : '#f\r\n')
    else this.int(b ? 1 : 0)
  }

  int (n: number | bigint): void {
    // The common case (counts, lengths, small counters) without making a string.
    if (typeof n === 'number' && n >= 0 && n <= 0x7fffffff && Number.isInteger(n)) {
      this.ensure(16)
      this.buf[this.pos++] = 58
      this.digits(n)
      return
    }
    this.raw(':' + String(n) + '\r\n')
  }

  arrayHeader (n: number): void {
    this.ensure(16)
    this.buf[this.pos++] = 42
    this.digits(n)
  }

  /** A bulk string from bytes `src[start, end)`. */
  bulk (src: Buffer, start: number, end: number): void {
    const len = end - start
    this.ensure(len + 16)
    const b = this.buf
    b[this.pos++] = 36
    this.digits(len)
    this.pos += copyBytes(b, this.pos, src, start, end)
    b[this.pos++] = 13
    b[this.pos++] = 10
  }

  bulkString (s: string): void {
    if (s.length <= 32) { this.shortBulkString(s); return }
    const len = Buffer.byteLength(s)
    this.ensure(len + 16)
    this.buf[this.pos++] = 36
    this.digits(len)
    this.pos += this.buf.write(s, this.pos)
    this.buf.writeUInt16LE(CRLF, this.pos)
    this.pos += 2
  }

  /** A short string (a score, a number) written from its char codes when all are ASCII: no native call. */
  private shortBulkString (s: string): void {
    const n = s.length
    this.ensure(3 * n + 16)
    const b = this.buf
    const start = this.pos
    b[this.pos++] = 36
    this.digits(n)
    let p = this.pos
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c > 127) {
        this.pos = start
        const len = Buffer.byteLength(s)
        b[this.pos++] = 36
        this.digits(len)
        p = this.pos + b.write(s, this.pos)
        break
      }
      b[p++] = c
    }
    b[p] = 13
    b[p + 1] = 10
    this.pos = p + 2
  }

  /** Writes a non-negative integer and CRLF without making a string. */
  private digits (n: number): void {
    const b = this.buf
    if (n < 10) {
      b[this.pos++] = 48 + n
    } else if (n < 100) {
      const t = (n / 10) | 0
      b[this.pos] = 48 + t
      b[this.pos + 1] = 48 + n - 10 * t
      this.pos += 2
    } else {
      let len = 0
      for (let t = n; t > 0; t = Math.floor(t / 10)) len++
      let p = this.pos + len
      this.pos = p
      for (let t = n; t > 0; t = Math.floor(t / 10)) b[--p] = 48 + (t % 10)
    }
    b[this.pos++] = 13
    b[this.pos++] = 10
  }
}
