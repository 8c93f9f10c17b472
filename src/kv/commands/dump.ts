/**
 * DUMP and RESTORE with Redis's payload: the value as in an RDB (type byte and value), the RDB version
 * in 2 bytes little-endian, then the CRC64 of all before it, little-endian. The payload is made and read
 * by the RDB writer and reader (src/kv/rdb), so a DUMP from redis-server restores here and one from
 * here restores into redis-server 7.0 (this writes RDB version 10, the newest Redis 7.0 accepts).
 */
import { Crc64 } from '../rdb/crc64.ts'
import type { RdbError } from '../rdb/errors.ts'
import { RDB_MAX_READ_VERSION, type RdbValue } from '../rdb/format.ts'
import { RdbReader } from '../rdb/reader.ts'
import { CommandRunner } from '../rdb/runner.ts'
import { foundValue, put } from '../rdb/store.ts'
import { RdbWriter } from '../rdb/writer.ts'
import { NOT_INT, OOM, SYNTAX, type Ctx, type ServerView } from './context.ts'
import type { Command } from './types.ts'

/**
 * The memory a RESTORE may decode one payload into before it is built into the store: a hostile
 * payload (a listpack of a million 2-byte entries, a string claiming LZF's best ratio) is refused
 * rather than allowed to balloon the process.
 */
export const RESTORE_BUDGET = 256 * 1024 * 1024

const FOOTER = 10

/** One command runner per server: DUMP reads and RESTORE builds collections through ordinary commands. */
const runners = new WeakMap<ServerView, CommandRunner>()
function runnerOf (server: ServerView): CommandRunner {
  let r = runners.get(server)
  if (r === undefined) { r = new CommandRunner(server); runners.set(server, r) }
  return r
}

function dump (c: Ctx): void {
  if (c.store.find(c.buf, c.s(1), c.e(1)) < 0) { c.out.nil(); return }
  const key = c.copy(1)
  const payload = RdbWriter.dump(foundValue(runnerOf(c.server), c.client.db, c.store, key))
  c.out.bulk(payload, 0, payload.length)
}

/** Redis's verifyDumpPayload: a footer, an RDB version this reader knows, and a CRC64 that matches. */
function verified (p: Buffer): boolean {
  if (p.length < FOOTER) return false
  const version = p.readUInt16LE(p.length - FOOTER)
  if (version > RDB_MAX_READ_VERSION) return false
  const crc = new Crc64()
  crc.update(p, 0, p.length - 8)
  return crc.bytes().equals(p.subarray(p.length - 8))
}

interface RestoreOptions { replace: boolean, absttl: boolean }

/** REPLACE, ABSTTL, IDLETIME s and FREQ f, with Redis's errors; null after an error reply. */
function options (c: Ctx): RestoreOptions | null {
  const o = { replace: false, absttl: false }
  let idle = false
  let freq = false
  for (let i = 4; i < c.argc; i++) {
    const more = i + 1 < c.argc
    if (c.is(i, 'replace')) o.replace = true
    else if (c.is(i, 'absttl')) o.absttl = true
    else if (c.is(i, 'idletime') && more && !freq) {
      // Accepted and checked as Redis does; only noeviction exists here, so no LRU clock is kept.
      const n = c.int(++i)
      if (n === null) { c.out.error(NOT_INT); return null }
      if (n < 0n) { c.out.error('ERR Invalid IDLETIME value, must be >= 0'); return null }
      idle = true
    } else if (c.is(i, 'freq') && more && !idle) {
      const n = c.int(++i)
      if (n === null) { c.out.error(NOT_INT); return null }
      if (n < 0n || n > 255n) { c.out.error('ERR Invalid FREQ value, must be >= 0 and <= 255'); return null }
      freq = true
    } else { c.out.error(SYNTAX); return null }
  }
  return o
}

/** The payload's value, or an error reply (null): Redis's two texts for a bad footer and a bad body. */
function decode (c: Ctx, payload: Buffer): RdbValue | null {
  if (!verified(payload)) { c.out.error('ERR DUMP payload version or checksum are wrong'); return null }
  try {
    const v = RdbReader.payloadValue(payload.subarray(0, payload.length - FOOTER), RESTORE_BUDGET)
    // Redis refuses an empty collection: no key of its own holds one.
    if (v.type !== 'string' && v.value.length === 0) { c.out.error('ERR Bad data format'); return null }
    return v
  } catch (err) {
    // Any failure to decode is the payload's fault (a RangeError included, should a check be missing):
    // it must cost the client an error, never the server its life.
    c.out.error((err as RdbError).code === 'ERR_RDB_TOO_BIG' ? `ERR DUMP payload decodes to more than ${RESTORE_BUDGET >> 20} MiB, the most RESTORE takes` : 'ERR Bad data format')
    return null
  }
}

/** RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f], checking in Redis's order. */
function restore (c: Ctx): void {
  const o = options(c)
  if (o === null) return
  if (!o.replace && c.store.find(c.buf, c.s(1), c.e(1)) >= 0) { c.out.error('BUSYKEY Target key name already exists.'); return }
  const ttl = c.num(2)
  if (ttl === null) { c.out.error(NOT_INT); return }
  if (ttl < 0) { c.out.error('ERR Invalid TTL value, must be >= 0'); return }
  // A view of the read buffer, not a copy: it is decoded before anything else runs.
  const value = decode(c, c.buf.subarray(c.s(3), c.e(3)))
  if (value === null) return
  const key = c.copy(1)
  const old = c.store.find(key, 0, key.length)
  if (old >= 0) c.store.removeAt(old)
  const expireAt = ttl === 0 ? 0 : o.absttl ? ttl : Date.now() + ttl
  // A TTL already past: the key is not created (and a replaced one stays deleted), as in Redis.
  if (expireAt !== 0 && expireAt <= Date.now()) { c.out.ok(); return }
  try {
    put(c.server, runnerOf(c.server), { db: c.client.db, key, expireAt, value })
  } catch (err) {
    // Half a collection must not stay behind.
    const slot = c.store.find(key, 0, key.length)
    if (slot >= 0) c.store.removeAt(slot)
    // A value the store's own commands refuse (ERR_RDB_CORRUPT) is a bad payload too.
    c.out.error((err as RdbError).code === 'ERR_RDB_OOM' ? OOM : 'ERR Bad data format')
    return
  }
  c.out.ok()
}

export const dumpCommands: Command[] = [
  { name: 'dump', arity: 2, flags: ['readonly'], keys: [1, 1, 1], run: dump },
  { name: 'restore', arity: -4, flags: ['write', 'denyoom'], keys: [1, 1, 1], run: restore }
]
