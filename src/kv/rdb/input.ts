/**
 * Buffered, bounded reading of an RDB file: a window of the file is in memory, never the whole of it,
 * and the CRC64 is fed with every byte as it leaves the window. A length that claims more bytes than
 * the file has left is refused before anything is allocated for it.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { Crc64 } from './crc64.ts'
import { rdbError } from './errors.ts'

const WINDOW = 1 << 20

/** Where the bytes come from: a file descriptor, or a Buffer (for tests and in-memory payloads). */
export interface ByteSource {
  size: number
  read (into: Buffer, at: number, len: number, pos: number): number
  close (): void
}

export function fileSource (path: string): ByteSource {
  const fd = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    return { size, read: (into, at, len, pos) => readSync(fd, into, at, len, pos), close: () => closeSync(fd) }
  } catch (err) {
    closeSync(fd)
    throw err
  }
}

export function bufferSource (b: Buffer): ByteSource {
  return { size: b.length, read: (into, at, len, pos) => b.copy(into, at, pos, Math.min(b.length, pos + len)), close: () => {} }
}

export class RdbInput {
  readonly crc = new Crc64()
  private buf = Buffer.allocUnsafe(WINDOW)
  /** Read position in `buf`, end of valid bytes in `buf`, and the file offset of `buf[0]`. */
  private pos = 0
  private end = 0
  private base = 0
  /** Bytes of `buf` before this are already in the CRC. */
  private summed = 0

  constructor (private readonly src: ByteSource) {}

  /** The file offset of the next byte. */
  get offset (): number { return this.base + this.pos }

  get size (): number { return this.src.size }

  /** Makes `n` bytes available at `this.pos`; throws ERR_RDB_TRUNCATED if the file has fewer left. */
  ensure (n: number): void {
    if (this.end - this.pos >= n) return
    if (this.offset + n > this.src.size) throw rdbError('ERR_RDB_TRUNCATED', `file ends ${this.offset + n - this.src.size} bytes early`, this.offset)
    this.crc.update(this.buf, this.summed, this.pos)
    if (n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2))
      this.buf.copy(bigger, 0, this.pos, this.end)
      this.buf = bigger
    } else {
      this.buf.copy(this.buf, 0, this.pos, this.end)
    }
    this.end -= this.pos
    this.base += this.pos
    this.pos = 0
    this.summed = 0
    while (this.end < n) {
      const got = this.src.read(this.buf, this.end, this.buf.length - this.end, this.base + this.end)
      if (got <= 0) throw rdbError('ERR_RDB_TRUNCATED', 'file shrank while being read', this.offset)
      this.end += got
    }
    // A window grown for one big value goes back to its usual size once that value is consumed.
    if (this.buf.length > WINDOW && n <= WINDOW) this.shrink()
  }

  private shrink (): void {
    const small = Buffer.allocUnsafe(Math.max(WINDOW, this.end))
    this.buf.copy(small, 0, 0, this.end)
    this.buf = small
  }

  u8 (): number {
    this.ensure(1)
    return this.buf[this.pos++]
  }

  /** `n` bytes as a copy that outlives the window. */
  bytes (n: number): Buffer {
    this.ensure(n)
    const b = Buffer.from(this.buf.subarray(this.pos, this.pos + n))
    this.pos += n
    return b
  }

  /** `n` bytes as a view into the window: valid only until the next read. */
  view (n: number): Buffer {
    this.ensure(n)
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }

  /** Everything read so far goes into the CRC; returns it (the checksum covers up to the EOF opcode). */
  checksumSoFar (): Crc64 {
    this.crc.update(this.buf, this.summed, this.pos)
    this.summed = this.pos
    return this.crc
  }

  close (): void {
    this.src.close()
  }
}
