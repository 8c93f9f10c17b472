/**
 * Writes RDB version 10, as Redis 7.0 does, so that redis-server 7.0 and later load it: strings
 * int-encoded or LZF-compressed where Redis would, compact encodings (listpack, intset) under
 * Redis's default thresholds, quicklist 2 lists, binary zset scores, and the CRC64 at the end.
 */
import { Crc64 } from './crc64.ts'
import { COMPACT, OP, QUICKLIST_PACKED, RDB_WRITE_VERSION, T, type RdbValue } from './format.ts'
import { lzfCompress } from './lzf.ts'
import { canonicalInt, writeIntset, writeListpack } from './packed.ts'

const CHUNK = 1 << 20

export interface RdbWriterOptions {
  /** LZF-compress strings over 20 bytes, as Redis's rdbcompression yes (the default). */
  compress?: boolean
}

export class RdbWriter {
  readonly crc = new Crc64()
  bytes = 0
  private buf = Buffer.allocUnsafe(CHUNK)
  private pos = 0
  private readonly compress: boolean

  /**
   * `sink` receives each full chunk; it must consume it before returning (the chunk is reused).
   * `header: false` leaves out the "REDIS0010" magic, for a DUMP payload (see `dump`).
   */
  constructor (private readonly sink: (chunk: Buffer) => void, opts: RdbWriterOptions & { header?: boolean } = {}) {
    this.compress = opts.compress ?? true
    if (opts.header !== false) this.raw(Buffer.from(`REDIS${String(RDB_WRITE_VERSION).padStart(4, '0')}`, 'latin1'))
  }

  /**
   * A DUMP payload, as Redis's DUMP makes it: the value as in an RDB (type byte, then the value, no
   * key), the RDB version in 2 bytes little-endian, then the CRC64 of everything before it.
   */
  static dump (value: RdbValue): Buffer {
    const parts: Buffer[] = []
    const w = new RdbWriter((chunk) => { parts.push(Buffer.from(chunk)) }, { header: false })
    const type = w.typeOf(value)
    w.u8(type)
    w.body(type, value)
    w.buf.writeUInt16LE(RDB_WRITE_VERSION, w.room(2))
    w.flush()
    w.raw(w.crc.bytes(), false)
    w.flush(false)
    return Buffer.concat(parts)
  }

  aux (key: string, value: string): void {
    this.u8(OP.AUX)
    this.string(Buffer.from(key, 'latin1'))
    this.string(Buffer.from(value, 'latin1'))
  }

  selectDb (db: number, keys: number, expires: number): void {
    this.u8(OP.SELECTDB)
    this.length(db)
    this.u8(OP.RESIZEDB)
    this.length(keys)
    this.length(expires)
  }

  /** One key; `expireAt` in ms since the epoch, 0 for none. */
  key (key: Buffer, value: RdbValue, expireAt = 0): void {
    if (expireAt !== 0) {
      this.u8(OP.EXPIRETIME_MS)
      const b = this.room(8)
      this.buf.writeBigInt64LE(BigInt(Math.trunc(expireAt)), b)
    }
    const type = this.typeOf(value)
    this.u8(type)
    this.string(key)
    this.body(type, value)
  }

  /** The EOF opcode and the checksum; flushes everything to the sink. */
  end (): void {
    this.u8(OP.EOF)
    this.flush()
    this.raw(this.crc.bytes(), false)
    this.flush(false)
  }

  private list (items: Buffer[]): void {
    const nodes: Buffer[][] = []
    let node: Buffer[] = []
    let size = 0
    for (const it of items) {
      if (node.length > 0 && (node.length >= COMPACT.listpackEntries || size + it.length > COMPACT.quicklistNodeBytes)) {
        nodes.push(node)
        node = []
        size = 0
      }
      node.push(it)
      size += it.length + 2
    }
    if (node.length > 0) nodes.push(node)
    this.length(nodes.length)
    for (const n of nodes) {
      this.length(QUICKLIST_PACKED)
      this.string(writeListpack(n))
    }
  }

  /** The RDB type byte of a value: a compact encoding under Redis's default thresholds. */
  private typeOf (v: RdbValue): number {
    switch (v.type) {
      case 'string': return T.STRING
      case 'list': return T.LIST_QUICKLIST_2
      case 'set': return v.value.length <= COMPACT.intsetEntries && v.value.every((m) => canonicalInt(m) !== null) ? T.SET_INTSET : T.SET
      case 'zset': return small(v.value.length, v.value.map((e) => e[0])) ? T.ZSET_LISTPACK : T.ZSET_2
      case 'hash': return small(v.value.length, v.value.flat()) ? T.HASH_LISTPACK : T.HASH
    }
  }

  /** The value of `v` in the encoding `type` (from `typeOf`). */
  private body (type: number, v: RdbValue): void {
    if (v.type === 'string') this.string(v.value)
    else if (v.type === 'list') this.list(v.value)
    else if (v.type === 'set') this.set(type, v.value)
    else if (v.type === 'zset') this.zset(type, v.value)
    else this.hash(type, v.value)
  }

  private set (type: number, members: Buffer[]): void {
    if (type === T.SET_INTSET) {
      this.string(writeIntset(members.map((m) => canonicalInt(m) as bigint)))
      return
    }
    this.length(members.length)
    for (const m of members) this.string(m)
  }

  private zset (type: number, entries: Array<[Buffer, number]>): void {
    if (type === T.ZSET_LISTPACK) {
      // A listpack zset is kept in score order (then member order): Redis relies on it.
      const sorted = [...entries].sort((a, b) => (a[1] - b[1]) || Buffer.compare(a[0], b[0]))
      this.string(writeListpack(sorted.flatMap(([m, s]) => [m, Buffer.from(scoreText(s), 'latin1')])))
      return
    }
    this.length(entries.length)
    for (const [m, s] of entries) {
      this.string(m)
      this.buf.writeDoubleLE(s, this.room(8))
    }
  }

  private hash (type: number, entries: Array<[Buffer, Buffer]>): void {
    if (type === T.HASH_LISTPACK) {
      this.string(writeListpack(entries.flat()))
      return
    }
    this.length(entries.length)
    for (const [f, v] of entries) { this.string(f); this.string(v) }
  }

  /** A string, int-encoded or compressed where Redis's rdbSaveRawString would. */
  private string (s: Buffer): void {
    if (s.length <= 11) {
      const x = canonicalInt(s)
      if (x !== null && x >= -2147483648n && x <= 2147483647n) { this.int(Number(x)); return }
    }
    if (this.compress && s.length > 20) {
      const z = lzfCompress(s)
      if (z !== null) {
        this.u8(0xc3)
        this.length(z.length)
        this.length(s.length)
        this.raw(z)
        return
      }
    }
    this.length(s.length)
    this.raw(s)
  }

  private int (x: number): void {
    if (x >= -128 && x <= 127) { this.u8(0xc0); this.buf.writeInt8(x, this.room(1)) } else if (x >= -32768 && x <= 32767) { this.u8(0xc1); this.buf.writeInt16LE(x, this.room(2)) } else { this.u8(0xc2); this.buf.writeInt32LE(x, this.room(4)) }
  }

  private length (n: number): void {
    if (n < 64) this.u8(n)
    else if (n < 16384) { this.u8(0x40 | (n >>> 8)); this.u8(n & 0xff) } else if (n <= 0xffffffff) { this.u8(0x80); this.buf.writeUInt32BE(n, this.room(4)) } else { this.u8(0x81); this.buf.writeBigUInt64BE(BigInt(n), this.room(8)) }
  }

  private u8 (b: number): void {
    this.buf[this.room(1)] = b
  }

  /** Reserves `n` bytes in the chunk (flushing first if needed); returns where they start. */
  private room (n: number): number {
    if (this.pos + n > this.buf.length) this.flush()
    const at = this.pos
    this.pos += n
    return at
  }

  private raw (b: Buffer, summed = true): void {
    if (b.length > CHUNK) {
      this.flush(summed)
      if (summed) this.crc.update(b)
      this.sink(b)
      this.bytes += b.length
      return
    }
    b.copy(this.buf, this.room(b.length))
  }

  private flush (summed = true): void {
    if (this.pos === 0) return
    const chunk = this.buf.subarray(0, this.pos)
    if (summed) this.crc.update(chunk)
    this.sink(chunk)
    this.bytes += this.pos
    this.pos = 0
  }
}

function small (n: number, items: Buffer[]): boolean {
  return n <= COMPACT.listpackEntries && items.every((b) => b.length <= COMPACT.listpackValue)
}

/** A score as text the way Redis's d2string gives it, close enough to parse back to the same double. */
export function scoreText (s: number): string {
  if (s === Infinity) return 'inf'
  if (s === -Infinity) return '-inf'
  return Object.is(s, -0) ? '-0' : String(s)
}
