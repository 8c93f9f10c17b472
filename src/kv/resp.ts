/**
 * RESP2 request parser. It works on a Buffer in place: each argument is a (start, end) pair of
 * offsets into the input, so a command costs no string or Buffer allocation.
 */

/** Redis's limits: a bulk string of at most 512 MiB, at most 1M+ arguments, 64 KiB inline lines. */
export const MAX_BULK = 512 * 1024 * 1024
export const MAX_ARGS = 1024 * 1024
export const MAX_INLINE = 64 * 1024

/** Returned by `parse` when the buffer holds only part of a command. */
export const INCOMPLETE = -1
/** Returned by `parse` on malformed input; the reason is in `error`. */
export const PROTOCOL_ERROR = -2

const CR = 13
const LF = 10

export class RespParser {
  /** Offsets of the current command's arguments in `buf`. */
  start = new Int32Array(64)
  end = new Int32Array(64)
  argc = 0
  buf: Buffer = Buffer.alloc(0)
  error = ''
  /** When `parse` returns INCOMPLETE: at least this many bytes (from the command start) are needed. */
  need = 0

  /**
   * Parses one command at `pos`. Returns the offset after it, INCOMPLETE or PROTOCOL_ERROR.
   * An empty command (`*0`, a blank line) yields argc 0.
   */
  parse (buf: Buffer, pos: number, limit: number): number {
    this.buf = buf
    this.argc = 0
    this.need = 0
    if (pos >= limit) return INCOMPLETE
    if (buf[pos] !== 42) return this.parseInline(buf, pos, limit)
    let p = pos + 1
    const line = this.readInt(buf, p, limit)
    if (line < 0) return this.lineIncomplete(pos, pos, limit, 'too big mbulk count string')
    const count = this.num
    p = line
    if (this.bad || count > MAX_ARGS) return this.fail('invalid multibulk length')
    if (count <= 0) return p
    if (count > this.start.length) this.grow(count)
    for (let i = 0; i < count; i++) {
      if (p >= limit) return this.incomplete(p - pos + 1)
      if (buf[p] !== 36) return this.fail(`expected '$', got '${String.fromCharCode(buf[p])}'`)
      const after = this.readInt(buf, p + 1, limit)
      if (after < 0) return this.lineIncomplete(pos, p, limit, 'too big bulk count string')
      const len = this.num
      if (this.bad || len < 0 || len > MAX_BULK) return this.fail('invalid bulk length')
      const dataEnd = after + len
      if (dataEnd + 2 > limit) return this.incomplete(dataEnd + 2 - pos)
      if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) return this.fail('invalid bulk terminator')
      this.start[i] = after
      this.end[i] = dataEnd
      p = dataEnd + 2
    }
    this.argc = count
    return p
  }

  private num = 0
  private bad = false

  /** Reads digits up to CRLF from `p`; sets `num`/`bad`; returns the offset after CRLF, or -1 if no CRLF yet. */
  private readInt (buf: Buffer, p: number, limit: number): number {
    let n = 0
    let neg = false
    let digits = 0
    this.bad = false
    if (p < limit && buf[p] === 45) { neg = true; p++ }
    while (p < limit) {
      const c = buf[p]
      if (c === CR) {
        if (p + 1 >= limit) return -1
        if (buf[p + 1] !== LF || digits === 0) this.bad = true
        this.num = neg ? -n : n
        return p + 2
      }
      if (c < 48 || c > 57 || digits > 12) this.bad = true
      n = n * 10 + (c - 48)
      digits++
      p++
    }
    return -1
  }

  /** A line (from `lineStart`) without its CRLF yet: an error if already too long, else incomplete. */
  private lineIncomplete (cmdStart: number, lineStart: number, limit: number, what: string): number {
    if (limit - lineStart > MAX_INLINE) return this.fail(what)
    return this.incomplete(limit - cmdStart + 1)
  }

  private incomplete (need: number): number {
    this.need = need
    this.argc = 0
    return INCOMPLETE
  }

  private fail (what: string): number {
    this.error = `ERR Protocol error: ${what}`
    this.argc = 0
    return PROTOCOL_ERROR
  }

  private grow (n: number): void {
    let cap = this.start.length
    while (cap < n) cap *= 2
    this.start = new Int32Array(cap)
    this.end = new Int32Array(cap)
  }

  /** Inline commands (`PING\r\n` from telnet): whitespace-separated words, no quoting. */
  private parseInline (buf: Buffer, pos: number, limit: number): number {
    const nl = buf.indexOf(LF, pos)
    if (nl < 0 || nl >= limit) return this.lineIncomplete(pos, pos, limit, 'too big inline request')
    let lineEnd = nl
    if (lineEnd > pos && buf[lineEnd - 1] === CR) lineEnd--
    let argc = 0
    let p = pos
    while (p < lineEnd) {
      while (p < lineEnd && (buf[p] === 32 || buf[p] === 9)) p++
      if (p >= lineEnd) break
      const s = p
      while (p < lineEnd && buf[p] !== 32 && buf[p] !== 9) p++
      if (argc >= this.start.length) this.grow(argc + 1)
      this.start[argc] = s
      this.end[argc] = p
      argc++
    }
    this.argc = argc
    return nl + 1
  }
}
