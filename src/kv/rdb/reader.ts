/**
 * A strict, streaming RDB reader: `next()` returns one key at a time (with its database, expiry and
 * value) and null after the EOF opcode and a checksum that matches. Anything else is an RdbError:
 * a file is never half-read without a word. Memory is the read window plus the key being read.
 */
import { rdbError } from './errors.ts'
import { OP, QUICKLIST_PACKED, QUICKLIST_PLAIN, RDB_MAX_READ_VERSION, T, type RdbKey, type RdbValue } from './format.ts'
import { bufferSource, RdbInput, type ByteSource } from './input.ts'
import { lzfDecompress } from './lzf.ts'
import { readIntset, readListpack, readZiplist } from './packed.ts'
import { pairs, parseScore, scored, unique } from './members.ts'

/** Redis's proto-max-bulk-len default: no string in an RDB Redis can load is longer. */
const MAX_STRING = 512 * 1024 * 1024
/** What one decoded element costs besides its bytes (a Buffer object and its slot in an array), roughly. */
const BUFFER_OVERHEAD = 96

const UNSUPPORTED: Record<number, string> = {
  [T.MODULE_PRE_GA]: 'module value', [T.MODULE_2]: 'module value', [T.HASH_ZIPMAP]: 'zipmap hash (RDB < 4)',
  [T.STREAM_LISTPACKS]: 'stream', [T.STREAM_LISTPACKS_2]: 'stream', [T.STREAM_LISTPACKS_3]: 'stream'
}

export class RdbReader {
  readonly in: RdbInput
  version = 0
  db = 0
  /** AUX fields (redis-ver, ctime, ...), as read. */
  readonly aux = new Map<string, string>()
  /** RESIZEDB hints per database: keys and keys with expiry. */
  readonly sizes = new Map<number, { keys: number, expires: number }>()
  /** Set once the checksum was read: whether it was checked (a file saved with rdbchecksum no has 0). */
  checksum: 'verified' | 'absent' | null = null
  private done = false

  /**
   * Bytes the values read so far may still take in memory (each string counts its length plus a
   * Buffer's overhead): a bound on what a hostile payload can make this reader allocate.
   */
  private budget: number

  /**
   * Takes ownership of `src`: it is closed if the header is refused, otherwise by `close()`.
   * `header: false` reads a headerless DUMP payload (see `payloadValue`).
   */
  constructor (src: ByteSource, opts: { header?: boolean, budget?: number } = {}) {
    this.in = new RdbInput(src)
    this.budget = opts.budget ?? Infinity
    try {
      if (opts.header !== false) this.header()
    } catch (err) {
      src.close()
      throw err
    }
  }

  /**
   * The value of a DUMP payload's body (the payload without its 10-byte footer): a type byte, the
   * value, and nothing after it. `budget` bounds the memory the decoded value may take.
   */
  static payloadValue (body: Buffer, budget: number): RdbValue {
    const r = new RdbReader(bufferSource(body), { header: false, budget })
    const type = r.in.u8()
    if (type >= OP.SLOT_INFO) throw rdbError('ERR_RDB_BAD_TYPE', `opcode ${type} where a value type was expected`, 0)
    const value = r.value(type, 0)
    if (r.in.offset !== body.length) throw rdbError('ERR_RDB_TRAILING', `${body.length - r.in.offset} bytes after the value`, r.in.offset)
    return value
  }

  /** Counts `bytes` (and `items` Buffers) against the budget; over it is an error, before the caller allocates. */
  private charge (bytes: number, items = 1): void {
    this.budget -= bytes + items * BUFFER_OVERHEAD
    if (this.budget < 0) throw rdbError('ERR_RDB_TOO_BIG', 'the value decodes to more memory than allowed', this.in.offset)
  }

  private header (): void {
    const magic = this.in.size >= 9 ? this.in.view(9).toString('latin1') : ''
    if (!/^REDIS\d{4}$/.test(magic)) throw rdbError('ERR_RDB_BAD_MAGIC', 'not an RDB file (no REDIS header)', 0)
    this.version = Number(magic.slice(5))
    if (this.version < 1 || this.version > RDB_MAX_READ_VERSION) throw rdbError('ERR_RDB_VERSION', `RDB version ${this.version} is not supported (1 to ${RDB_MAX_READ_VERSION})`, 5)
  }

  /**
   * Reads every key into `onKey`, yielding to the event loop every `sliceMs` of work so that a big
   * file does not stall timers and signals. Closes the source whatever happens.
   */
  async forEach (onKey: (k: RdbKey) => void, sliceMs = 10): Promise<void> {
    try {
      let slice = performance.now()
      for (let k = this.next(), n = 0; k !== null; k = this.next(), n++) {
        onKey(k)
        if ((n & 63) === 0 && performance.now() - slice > sliceMs) {
          await new Promise((resolve) => setImmediate(resolve))
          slice = performance.now()
        }
      }
    } finally {
      this.close()
    }
  }

  /** The next key, or null at the (verified) end. */
  next (): RdbKey | null {
    if (this.done) return null
    let expireAt = 0
    for (;;) {
      const at = this.in.offset
      const op = this.in.u8()
      if (op === OP.EOF) { this.finish(); return null }
      if (op === OP.SELECTDB) { this.db = this.length(); continue }
      if (op === OP.RESIZEDB) { this.sizes.set(this.db, { keys: this.length(), expires: this.length() }); continue }
      if (op === OP.AUX) { this.aux.set(this.string().toString('latin1'), this.string().toString('latin1')); continue }
      if (op === OP.EXPIRETIME_MS) { expireAt = this.time(8); continue }
      if (op === OP.EXPIRETIME) { expireAt = this.time(4) * 1000; continue }
      if (op === OP.IDLE) { this.length(); continue }
      if (op === OP.FREQ) { this.in.u8(); continue }
      if (op === OP.SLOT_INFO) { this.length(); this.length(); this.length(); continue }
      if (op === OP.FUNCTION2 || op === OP.FUNCTION_PRE_GA) throw rdbError('ERR_RDB_UNSUPPORTED', 'the file holds Redis functions, which pagegift-kv does not run', at)
      if (op === OP.MODULE_AUX) throw rdbError('ERR_RDB_UNSUPPORTED', 'the file holds module data', at)
      const key = this.string()
      const value = this.value(op, at)
      return { db: this.db, key, expireAt, value }
    }
  }

  close (): void {
    this.in.close()
  }

  private finish (): void {
    const crc = this.in.checksumSoFar().bytes()
    if (this.version >= 5) {
      const at = this.in.offset
      const stored = this.in.view(8)
      if (stored.every((b) => b === 0)) this.checksum = 'absent'
      else if (!stored.equals(crc)) throw rdbError('ERR_RDB_CHECKSUM', `checksum ${stored.toString('hex')} does not match the contents (${crc.toString('hex')})`, at)
      else this.checksum = 'verified'
    }
    if (this.in.offset !== this.in.size) throw rdbError('ERR_RDB_TRAILING', `${this.in.size - this.in.offset} bytes after the end of the RDB`, this.in.offset)
    this.done = true
  }

  /** An RDB length; `special` is set when it is a string's special encoding instead. */
  private length (allowSpecial = false): number {
    const at = this.in.offset
    const b = this.in.u8()
    const kind = b >>> 6
    if (kind === 0) return b & 0x3f
    if (kind === 1) return ((b & 0x3f) << 8) | this.in.u8()
    if (b === 0x80) return this.in.view(4).readUInt32BE(0)
    if (b === 0x81) {
      const n = this.in.view(8).readBigUInt64BE(0)
      if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw rdbError('ERR_RDB_CORRUPT', `length ${n} is too large`, at)
      return Number(n)
    }
    if (kind === 3 && allowSpecial) return -1 - (b & 0x3f)
    throw rdbError('ERR_RDB_CORRUPT', `bad length byte 0x${b.toString(16)}`, at)
  }

  /** A count of elements, each at least one byte: more than the bytes left is a truncated file. */
  private count (): number {
    const n = this.length()
    const left = this.in.size - this.in.offset
    if (n > left) throw rdbError('ERR_RDB_TRUNCATED', `${n} elements announced, ${left} bytes left`, this.in.offset)
    // Charged up front: a million empty strings cost little to send and a lot to hold.
    this.charge(0, n)
    return n
  }

  private time (bytes: 4 | 8): number {
    const b = this.in.view(bytes)
    const t = bytes === 4 ? b.readUInt32LE(0) : Number(b.readBigInt64LE(0))
    if (!Number.isSafeInteger(t) || t < 0) throw rdbError('ERR_RDB_CORRUPT', `expiry time ${t} is out of range`, this.in.offset - bytes)
    // 0 means "no expiry" to the store; an expiry at the epoch has passed just as surely at 1 ms.
    return t === 0 ? 1 : t
  }

  string (): Buffer {
    const at = this.in.offset
    const n = this.length(true)
    if (n >= 0) {
      if (n > MAX_STRING) throw rdbError('ERR_RDB_CORRUPT', `string length ${n} is over 512 MiB`, at)
      if (n > this.in.size - this.in.offset) throw rdbError('ERR_RDB_TRUNCATED', `string of ${n} bytes, ${this.in.size - this.in.offset} left`, at)
      this.charge(n, 0)
      return this.in.bytes(n)
    }
    const enc = -1 - n
    if (enc === 0) return Buffer.from(String(this.in.view(1).readInt8(0)))
    if (enc === 1) return Buffer.from(String(this.in.view(2).readInt16LE(0)))
    if (enc === 2) return Buffer.from(String(this.in.view(4).readInt32LE(0)))
    if (enc !== 3) throw rdbError('ERR_RDB_CORRUPT', `unknown string encoding ${enc}`, at)
    const clen = this.length()
    const len = this.length()
    // LZF expands at most ~132 times; a larger claim is a lie that would only waste an allocation.
    if (len > MAX_STRING || len > clen * 132 + 64) throw rdbError('ERR_RDB_CORRUPT', `lzf string claims ${len} bytes from ${clen}`, at)
    const z = this.in.view(clen)
    this.charge(len, 0)
    try {
      return lzfDecompress(z, 0, clen, len)
    } catch (err) {
      ;(err as Error).message += ` (string at byte ${at})`
      throw err
    }
  }

  private double (): number {
    const at = this.in.offset
    const n = this.in.u8()
    if (n === 253) return NaN
    if (n === 254) return Infinity
    if (n === 255) return -Infinity
    return parseScore(this.in.view(n), at)
  }

  private value (type: number, at: number): RdbValue {
    switch (type) {
      case T.STRING: return { type: 'string', value: this.string() }
      case T.LIST: return { type: 'list', value: this.strings(this.count()) }
      case T.SET: return { type: 'set', value: unique(this.strings(this.count()), at) }
      case T.ZSET:
      case T.ZSET_2: return { type: 'zset', value: this.zset(type === T.ZSET_2, at) }
      case T.HASH: return { type: 'hash', value: pairs(this.strings(this.count() * 2), at) }
      case T.LIST_ZIPLIST: return { type: 'list', value: this.packed(readZiplist, at) }
      case T.SET_INTSET: return { type: 'set', value: this.packed(readIntset, at) }
      case T.SET_LISTPACK: return { type: 'set', value: unique(this.packed(readListpack, at), at) }
      case T.ZSET_ZIPLIST: return { type: 'zset', value: scored(this.packed(readZiplist, at), at) }
      case T.ZSET_LISTPACK: return { type: 'zset', value: scored(this.packed(readListpack, at), at) }
      case T.HASH_ZIPLIST: return { type: 'hash', value: pairs(this.packed(readZiplist, at), at) }
      case T.HASH_LISTPACK: return { type: 'hash', value: pairs(this.packed(readListpack, at), at) }
      case T.LIST_QUICKLIST:
      case T.LIST_QUICKLIST_2: return { type: 'list', value: this.quicklist(type === T.LIST_QUICKLIST_2, at) }
    }
    const what = UNSUPPORTED[type]
    if (what !== undefined) throw rdbError('ERR_RDB_UNSUPPORTED', `the file holds a ${what}, which pagegift-kv does not store`, at)
    throw rdbError('ERR_RDB_BAD_TYPE', `unknown value type or opcode ${type}`, at)
  }

  private strings (n: number): Buffer[] {
    const out: Buffer[] = []
    for (let i = 0; i < n; i++) out.push(this.string())
    return out
  }

  private packed (decode: (b: Buffer) => Buffer[], at: number): Buffer[] {
    const blob = this.string()
    // Every packed entry takes at least 2 bytes of the blob and becomes one Buffer.
    this.charge(blob.length, blob.length >>> 1)
    try {
      return decode(blob)
    } catch (err) {
      ;(err as Error).message += ` (value at byte ${at})`
      throw err
    }
  }

  private zset (binary: boolean, at: number): Array<[Buffer, number]> {
    const n = this.count()
    const out: Array<[Buffer, number]> = []
    for (let i = 0; i < n; i++) {
      const m = this.string()
      const s = binary ? this.in.view(8).readDoubleLE(0) : this.double()
      if (Number.isNaN(s)) throw rdbError('ERR_RDB_CORRUPT', 'zset score is NaN', at)
      out.push([m, s])
    }
    unique(out.map((p) => p[0]), at)
    return out
  }

  private quicklist (v2: boolean, at: number): Buffer[] {
    const nodes = this.count()
    const out: Buffer[] = []
    for (let i = 0; i < nodes; i++) {
      const container = v2 ? this.length() : QUICKLIST_PACKED
      if (container === QUICKLIST_PLAIN) { out.push(this.string()); continue }
      if (container !== QUICKLIST_PACKED) throw rdbError('ERR_RDB_CORRUPT', `quicklist node container ${container} is invalid`, at)
      for (const x of this.packed(v2 ? readListpack : readZiplist, at)) out.push(x)
    }
    return out
  }
}
