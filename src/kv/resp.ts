/**
 * RESP2 request parser. It works on a Buffer in place: each argument is a (start, end) pair of
 * offsets into the input, so a command costs no string or Buffer allocation.
 *
 * It is resumable: when a command is not all there, the parser keeps where it is (the arguments
 * read so far, the length of the bulk it is in, where to go on looking for a line end), and
 * `resume` goes on from there once more bytes have come. No byte is looked at twice, so a command
 * that arrives in many small reads costs what it costs in one.
 */

/** Redis's limits: a bulk string of at most 512 MiB, at most 1M+ arguments, 64 KiB inline lines. */
export const MAX_BULK = 512 * 1024 * 1024
export const MAX_ARGS = 1024 * 1024
export const MAX_INLINE = 64 * 1024
/** Redis's limits for a client that must still authenticate (CVE-2021-32675): no big allocations before AUTH. */
export const UNAUTH_MAX_ARGS = 10
export const UNAUTH_MAX_BULK = 16384

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
  /** When INCOMPLETE: at least this many bytes (from the command's start) are needed to make progress. */
  need = 0
  /** Bytes looked at so far: the work, for tests that check it stays linear. */
  steps = 0
  /** Set while the client has not authenticated: Redis's tighter limits apply. */
  unauthenticated = false
  /** Where the current command starts. */
  base = 0
  /** The multibulk count once read; -1 before. */
  private count = -1
  /** Arguments read so far. */
  private got = 0
  /** The next byte to parse. */
  private p = 0
  /** Where the current bulk's data starts, once its header is read; -1 before. */
  private bulkStart = -1
  private bulkLen = 0
  /** Where to go on looking for the end of the current line. */
  private scan = 0
  private num = 0
  private bad = false

  /** Parses one command starting at `pos`. Returns the offset after it, INCOMPLETE or PROTOCOL_ERROR. */
  parse (buf: Buffer, pos: number, limit: number): number {
    this.begin(pos)
    return this.resume(buf, limit)
  }

  /**
   * Goes on with the command begun earlier, in `buf` (the same bytes at the same offsets, perhaps in
   * a bigger copy, with more after them). After a complete command the next one begins where it ended.
   * An empty command (`*0`, a blank line) yields argc 0.
   */
  resume (buf: Buffer, limit: number): number {
    this.buf = buf
    this.argc = 0
    this.need = 0
    const base = this.base
    if (this.count < 0) {
      if (base >= limit) return this.incomplete(1)
      if (buf[base] !== 42) return this.parseInline(buf, limit)
      const line = this.readLine(buf, base + 1, limit)
      if (line < 0) return this.lineIncomplete(base, limit, 'too big mbulk count string')
      const count = this.num
      if (this.bad || count > MAX_ARGS) return this.fail('invalid multibulk length')
      if (this.unauthenticated && count > UNAUTH_MAX_ARGS) return this.fail('unauthenticated multibulk length')
      if (count <= 0) return this.done(line, 0)
      if (count > this.start.length) this.grow(count)
      this.count = count
      this.p = line
    }
    while (this.got < this.count) {
      const p = this.p
      if (this.bulkStart < 0) {
        if (p >= limit) return this.incomplete(p - base + 1)
        if (buf[p] !== 36) return this.fail(`expected '$', got '${String.fromCharCode(buf[p])}'`)
        const after = this.readLine(buf, p + 1, limit)
        if (after < 0) return this.lineIncomplete(p, limit, 'too big bulk count string')
        const len = this.num
        if (this.bad || len < 0 || len > MAX_BULK) return this.fail('invalid bulk length')
        if (this.unauthenticated && len > UNAUTH_MAX_BULK) return this.fail('unauthenticated bulk length')
        this.bulkStart = after
        this.bulkLen = len
      }
      const dataEnd = this.bulkStart + this.bulkLen
      if (dataEnd + 2 > limit) return this.incomplete(dataEnd + 2 - base)
      this.steps += 2
      if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) return this.fail('invalid bulk terminator')
      this.start[this.got] = this.bulkStart
      this.end[this.got] = dataEnd
      this.got++
      this.p = dataEnd + 2
      this.bulkStart = -1
    }
    return this.done(this.p, this.count)
  }

  /** The unfinished command's bytes moved `delta` bytes down (to a new buffer, or to its start). */
  rebase (delta: number): void {
    this.base -= delta
    this.p -= delta
    this.scan -= delta
    if (this.bulkStart >= 0) this.bulkStart -= delta
    for (let i = 0; i < this.got; i++) {
      this.start[i] -= delta
      this.end[i] -= delta
    }
  }

  /** Starts a new command at `pos`, forgetting any unfinished one. */
  begin (pos: number): void {
    this.base = pos
    this.count = -1
    this.got = 0
    this.p = pos
    this.bulkStart = -1
    this.scan = pos
  }

  private done (next: number, argc: number): number {
    this.argc = argc
    this.begin(next)
    return next
  }

  /**
   * Finds the CRLF ending the line that starts at `from`, going on where the last look stopped.
   * Sets `num`/`bad` from the line's digits; returns the offset after the CRLF, or -1 if not there yet.
   */
  private readLine (buf: Buffer, from: number, limit: number): number {
    // A loop, not indexOf: the buffer may go on past `limit` with stale bytes, and lines are short.
    let cr = Math.max(from, this.scan)
    const at = cr
    while (cr < limit && buf[cr] !== CR) cr++
    if (cr + 1 >= limit) {
      this.steps += cr - at
      this.scan = cr
      return -1
    }
    this.steps += cr + 2 - at
    this.scan = cr + 2
    this.readInt(buf, from, cr)
    if (buf[cr + 1] !== LF) this.bad = true
    return cr + 2
  }

  /** The integer in `buf[p, e)`, as Redis reads it: an optional '-', then at most 13 digits. */
  private readInt (buf: Buffer, p: number, e: number): void {
    let n = 0
    let neg = false
    this.bad = false
    if (p < e && buf[p] === 45) { neg = true; p++ }
    if (p === e || e - p > 13) this.bad = true
    for (; p < e; p++) {
      const c = buf[p]
      if (c < 48 || c > 57) this.bad = true
      n = n * 10 + (c - 48)
    }
    this.num = neg ? -n : n
  }

  /** A line (from `lineStart`) without its CRLF yet: an error if already too long, else incomplete. */
  private lineIncomplete (lineStart: number, limit: number, what: string): number {
    if (limit - lineStart > MAX_INLINE) return this.fail(what)
    return this.incomplete(limit - this.base + 1)
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

  /**
   * Inline commands (`PING\r\n` from telnet), split as Redis's sdssplitargs does: words between
   * spaces, "double quotes" with \n \r \t \b \a \xHH and \<char> escapes, 'single quotes' with
   * \' only. An unescaped word is a range of the input; a quoted one is unescaped in place (its
   * bytes never outgrow the input they come from, and the line is consumed by this command).
   */
  private parseInline (buf: Buffer, limit: number): number {
    const pos = this.base
    const at = Math.max(pos, this.scan)
    let nl = at
    while (nl < limit && buf[nl] !== LF) nl++
    if (nl >= limit) {
      this.steps += limit - at
      this.scan = limit
      return this.lineIncomplete(pos, limit, 'too big inline request')
    }
    this.steps += nl + 1 - at
    let lineEnd = nl
    if (lineEnd > pos && buf[lineEnd - 1] === CR) lineEnd--
    this.steps += lineEnd - pos
    const argc = splitArgs(buf, pos, lineEnd, this)
    if (argc < 0) return this.fail('unbalanced quotes in request')
    return this.done(nl + 1, argc)
  }

  /** Records argument `i` as `buf[s, e)`. */
  setArg (i: number, s: number, e: number): void {
    if (i >= this.start.length) this.grow(i + 1)
    this.start[i] = s
    this.end[i] = e
  }
}

const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13)
const hex = (c: number): number => c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1
const ESCAPES: Record<number, number> = { 110: 10, 114: 13, 116: 9, 98: 8, 97: 7 }

/** sdssplitargs over `buf[p, end)`, writing unescaped words in place; returns argc, or -1 for unbalanced quotes. */
function splitArgs (buf: Buffer, p: number, end: number, out: RespParser): number {
  let argc = 0
  for (;;) {
    while (p < end && isSpace(buf[p])) p++
    if (p >= end) return argc
    const s = p
    let w = p
    let inq = false
    let insq = false
    for (;;) {
      const c = p < end ? buf[p] : -1
      if (inq) {
        if (c === -1) return -1
        if (c === 92 && p + 3 < end && buf[p + 1] === 120 && hex(buf[p + 2]) >= 0 && hex(buf[p + 3]) >= 0) {
          buf[w++] = hex(buf[p + 2]) * 16 + hex(buf[p + 3]); p += 4
        } else if (c === 92 && p + 1 < end) {
          buf[w++] = ESCAPES[buf[p + 1]] ?? buf[p + 1]; p += 2
        } else if (c === 34) {
          // The closing quote must be followed by a space or nothing at all.
          if (p + 1 < end && !isSpace(buf[p + 1])) return -1
          p++
          break
        } else { buf[w++] = c; p++ }
      } else if (insq) {
        if (c === -1) return -1
        if (c === 92 && p + 1 < end && buf[p + 1] === 39) { buf[w++] = 39; p += 2 } else if (c === 39) {
          if (p + 1 < end && !isSpace(buf[p + 1])) return -1
          p++
          break
        } else { buf[w++] = c; p++ }
      } else if (c === -1 || c === 32 || c === 10 || c === 13 || c === 9 || c === 0) {
        break
      } else if (c === 34) { inq = true; p++ } else if (c === 39) { insq = true; p++ } else { buf[w++] = c; p++ }
    }
    out.setArg(argc++, s, w)
  }
}
