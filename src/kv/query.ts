/**
 * A client's query buffer: the bytes of its unfinished command, and the parser that is part-way
 * through them. Whole commands in a read are parsed in the read's own buffer; only an unfinished
 * tail is copied here, and later reads are appended (the buffer grows by doubling, or at once to
 * the size a bulk header announced), so a command costs work linear in its size however it is cut.
 *
 * A big buffer lives in giftable memory from the store's allocator: on a live upgrade it moves as a
 * region, like the store, and a client half-way through a 20 MiB SET blocks nothing.
 */
import { INCOMPLETE, PROTOCOL_ERROR, RespParser } from './resp.ts'
import type { Allocator } from './segments.ts'

/** From this size on, the buffer is giftable memory (a region on a live upgrade). */
export const BIG_QUERY = 64 * 1024
/** A client whose unfinished command passes this is dropped (Redis's client-query-buffer-limit). */
export const MAX_QUERY_BUFFER = 1024 * 1024 * 1024

/** What `feed` did: all fine, a protocol error (in parser.error), `run` asked to stop, or the limit was passed. */
export type Outcome = 'ok' | 'error' | 'stop' | 'overflow'

const EMPTY = Buffer.alloc(0)

export class QueryBuffer {
  readonly parser = new RespParser()
  buf: Buffer = EMPTY
  len = 0
  /** The giftable memory behind `buf`, when it is big. */
  region: ArrayBuffer | null = null
  /** Counts the regions this buffer had, so that each gets a name of its own in a handoff. */
  regionCount = 0
  /** Bytes copied into the buffer so far: the work, for tests that check it stays linear. */
  copied = 0

  constructor (private readonly allocator: Allocator) {}

  /** Runs every whole command (`run` returns false to stop after one) and keeps the rest. */
  feed (chunk: Buffer, run: (p: RespParser) => boolean, start = 0, end = chunk.length): Outcome {
    if (this.len === 0) return this.drive(chunk, start, end, run, true)
    if (!this.append(chunk, start, end)) return 'overflow'
    if (this.len < this.parser.need) return 'ok'
    return this.drive(this.buf, 0, this.len, run, false)
  }

  /** Keeps bytes without parsing them (while the client is frozen for a handoff). */
  absorb (chunk: Buffer, start = 0, end = chunk.length): boolean {
    return start === end || this.append(chunk, start, end)
  }

  /** Runs what was absorbed. */
  run (run: (p: RespParser) => boolean): Outcome {
    return this.len === 0 ? 'ok' : this.drive(this.buf, 0, this.len, run, false)
  }

  /** The kept bytes (a view, valid until the next call). */
  pending (): Buffer {
    return this.buf.subarray(0, this.len)
  }

  /** Takes over a predecessor's query buffer: its region as is, with `len` bytes from a command's start. */
  adopt (region: ArrayBuffer, len: number): void {
    this.release()
    this.region = region
    this.buf = Buffer.from(region)
    this.len = Math.min(len, region.byteLength)
    this.parser.begin(0)
  }

  /** Gives the buffer's memory back. */
  release (): void {
    if (this.region !== null) this.allocator.release(this.region)
    this.region = null
    this.buf = EMPTY
    this.len = 0
  }

  /** Parses `buf` from the parser's position (`start`, for a new chunk) to `limit`. */
  private drive (buf: Buffer, start: number, limit: number, run: (p: RespParser) => boolean, inChunk: boolean): Outcome {
    const p = this.parser
    if (inChunk) p.begin(start)
    for (;;) {
      const next = p.resume(buf, limit)
      if (next === INCOMPLETE) break
      if (next === PROTOCOL_ERROR || (p.argc > 0 && !run(p))) {
        this.reset()
        return next === PROTOCOL_ERROR ? 'error' : 'stop'
      }
    }
    return this.keep(buf, limit, inChunk) ? 'ok' : 'overflow'
  }

  /** Keeps `buf[parser.base, limit)`, the unfinished command, at the start of the query buffer. */
  private keep (buf: Buffer, limit: number, inChunk: boolean): boolean {
    const p = this.parser
    const from = p.base
    const rest = limit - from
    if (rest > MAX_QUERY_BUFFER || p.need > MAX_QUERY_BUFFER) { this.reset(); return false }
    if (rest === 0) {
      this.reset()
      return true
    }
    if (inChunk) {
      this.len = 0
      if (!this.reserve(rest)) return false
      buf.copy(this.buf, 0, from, limit)
    } else if (from > 0) {
      this.buf.copyWithin(0, from, limit)
    }
    this.len = rest
    if (from > 0) {
      this.copied += rest
      p.rebase(from)
    } else if (inChunk) {
      this.copied += rest
    }
    return true
  }

  private append (chunk: Buffer, start: number, end: number): boolean {
    const n = end - start
    if (!this.reserve(this.len + n)) return false
    chunk.copy(this.buf, this.len, start, end)
    this.len += n
    this.copied += n
    return true
  }

  /** Makes room for `total` bytes, and for all that the parser said it needs. */
  private reserve (total: number): boolean {
    const want = Math.max(total, this.parser.need)
    if (want <= this.buf.length) return true
    if (want > MAX_QUERY_BUFFER) { this.reset(); return false }
    const size = Math.min(MAX_QUERY_BUFFER, Math.max(want, this.buf.length * 2, 4096))
    const region = size >= BIG_QUERY ? this.allocator.alloc(size, 'query') : null
    const next = region !== null ? Buffer.from(region) : Buffer.allocUnsafeSlow(size)
    this.buf.copy(next, 0, 0, this.len)
    this.copied += this.len
    const len = this.len
    this.release()
    this.buf = next
    this.len = len
    this.region = region
    if (region !== null) this.regionCount++
    return true
  }

  /** Drops everything kept; the next byte starts a new command. */
  private reset (): void {
    this.parser.begin(0)
    this.parser.need = 0
    if (this.region !== null) this.release()
    this.len = 0
  }
}
