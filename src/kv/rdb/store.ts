/**
 * RDB in and out of the server's databases: `loadRdb` fills empty databases from a Redis dump (at
 * start-up, before any client), `saveRdb` writes them as a dump that redis-server loads. A load that
 * fails part way throws: the caller must not serve databases it half-filled.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import type { RespValue } from '../client.ts'
import type { ServerView } from '../commands/context.ts'
import type { Store } from '../store.ts'
import { formatScore } from '../types/access.ts'
import { rdbError } from './errors.ts'
import { TYPE_TAG, type RdbKey, type RdbValue } from './format.ts'
import { fileSource } from './input.ts'
import { RdbReader } from './reader.ts'
import { CommandRunner, RespError } from './runner.ts'
import { RdbWriter } from './writer.ts'

export interface RdbLoadReport { keys: number, expiredSkipped: number, bytes: number, ms: number, checksum: 'verified' | 'absent' | null }
export interface RdbSaveReport { keys: number, bytes: number, ms: number }

/** Elements per building command: bounds the request a big collection turns into. */
const BATCH = 1024

/** Loads `path` into the (empty) databases. Keys already expired are skipped, as Redis does. */
export async function loadRdb (server: ServerView, path: string): Promise<RdbLoadReport> {
  const t0 = performance.now()
  const reader = new RdbReader(fileSource(path))
  const report: RdbLoadReport = { keys: 0, expiredSkipped: 0, bytes: reader.in.size, ms: 0, checksum: null }
  const runner = new CommandRunner(server)
  const now = Date.now()
  await reader.forEach((k) => {
    if (k.expireAt !== 0 && k.expireAt <= now) { report.expiredSkipped++; return }
    put(server, runner, k)
    report.keys++
  })
  report.checksum = reader.checksum
  report.ms = performance.now() - t0
  return report
}

/** Adds key `k` (absent from its database) with its value and expiry; throws an RdbError (OOM, bad value). */
export function put (server: ServerView, runner: CommandRunner, k: RdbKey): void {
  const name = (): string => `'${k.key.toString('latin1', 0, 64)}'`
  if (k.db >= server.dbs.count) throw rdbError('ERR_RDB_DB_RANGE', `key ${name()} is in database ${k.db}, and there are ${server.dbs.count} (--databases)`)
  const store = server.dbs.db(k.db)
  const slot = store.find(k.key, 0, k.key.length)
  if (slot >= 0) throw rdbError('ERR_RDB_DUPLICATE_KEY', `key ${name()} appears twice in database ${k.db}`)
  const v = k.value
  if (v.type === 'string') {
    if (!store.write(slot, k.key, 0, k.key.length, v.value, 0, v.value.length, k.expireAt, TYPE_TAG.string)) throw rdbError('ERR_RDB_OOM', 'the file does not fit maxmemory')
    return
  }
  for (const args of building(k.key, v)) {
    const r = runner.run(k.db, args)
    if (r instanceof RespError) throw rdbError(r.message.startsWith('OOM') ? 'ERR_RDB_OOM' : 'ERR_RDB_CORRUPT', `key ${name()}: ${r.message}`)
  }
  if (k.expireAt !== 0 && store.find(k.key, 0, k.key.length) >= 0) store.setExpire(k.expireAt)
}

/** The commands that build a collection, BATCH elements at a time. */
function * building (key: Buffer, v: Exclude<RdbValue, { type: 'string' }>): Generator<Array<Buffer | string>> {
  for (let i = 0; i < v.value.length; i += BATCH) {
    if (v.type === 'list') yield ['RPUSH', key, ...v.value.slice(i, i + BATCH)]
    else if (v.type === 'set') yield ['SADD', key, ...v.value.slice(i, i + BATCH)]
    else if (v.type === 'hash') yield ['HSET', key, ...v.value.slice(i, i + BATCH).flat()]
    else yield ['ZADD', key, ...v.value.slice(i, i + BATCH).flatMap(([m, s]) => [formatScore(s), m])]
  }
}

/**
 * Writes every live key of every database to `path` as RDB 10 (a temp file, fsynced, then renamed),
 * in one go: like Redis's SAVE, a point-in-time copy because nothing else runs while it writes.
 */
export function saveRdb (server: ServerView, path: string, opts: { compress?: boolean } = {}): RdbSaveReport {
  const t0 = performance.now()
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', 0o600)
  let keys = 0
  let bytes = 0
  try {
    const w = new RdbWriter((chunk) => { writeSync(fd, chunk) }, opts)
    w.aux('redis-ver', '7.0.0')
    w.aux('redis-bits', '64')
    w.aux('ctime', String(Math.floor(Date.now() / 1000)))
    const runner = new CommandRunner(server)
    const now = Date.now()
    server.dbs.setNow(now)
    for (const [db, store] of server.dbs.used()) {
      if (store.size === 0) continue
      w.selectDb(db, store.size, store.expires)
      keys += saveDb(w, runner, db, store, now)
    }
    w.end()
    bytes = w.bytes
    fsyncSync(fd)
  } catch (err) {
    closeSync(fd)
    rmSync(tmp, { force: true })
    throw err
  }
  closeSync(fd)
  renameSync(tmp, path)
  return { keys, bytes, ms: performance.now() - t0 }
}

function saveDb (w: RdbWriter, runner: CommandRunner, db: number, store: Store, now: number): number {
  let keys = 0
  for (let i = 0; i < store.index.capacity; i++) {
    if (!store.at(i)) continue
    const { seg, off } = store
    const at = seg.expireAt(off)
    if (at !== 0 && at <= now) continue
    const ks = seg.keyStart(off)
    // A copy: reading a collection below runs a command, which moves the store's seg/off.
    const key = Buffer.from(seg.bytes.subarray(ks, ks + seg.keyLen(off)))
    w.key(key, foundValue(runner, db, store, key), at)
    keys++
  }
  return keys
}

/**
 * The value of the key `store` found last (its seg/off), as the RDB writer takes it. A string is a
 * view of the store's segment: valid until the store changes.
 */
export function foundValue (runner: CommandRunner, db: number, store: Store, key: Buffer): RdbValue {
  const tag = store.typeOf()
  if (tag !== TYPE_TAG.string) return readCollection(runner, db, key, tag)
  const { seg, off } = store
  const vs = seg.valStart(off)
  return { type: 'string', value: seg.bytes.subarray(vs, vs + seg.valLen(off)) }
}

function readCollection (runner: CommandRunner, db: number, key: Buffer, tag: number): RdbValue {
  const all = (args: Array<Buffer | string | number>): Buffer[] => {
    const r: RespValue = runner.run(db, args)
    if (!Array.isArray(r)) throw new Error(`rdb save: ${String(args[0])} on a ${tag} key gave ${String(r)}`)
    return r as Buffer[]
  }
  if (tag === TYPE_TAG.list) return { type: 'list', value: all(['LRANGE', key, 0, -1]) }
  if (tag === TYPE_TAG.set) return { type: 'set', value: all(['SMEMBERS', key]) }
  const x = all(tag === TYPE_TAG.hash ? ['HGETALL', key] : ['ZRANGE', key, 0, -1, 'WITHSCORES'])
  const pairs: Array<[Buffer, Buffer]> = []
  for (let i = 0; i < x.length; i += 2) pairs.push([x[i], x[i + 1]])
  if (tag === TYPE_TAG.hash) return { type: 'hash', value: pairs }
  if (tag === TYPE_TAG.zset) return { type: 'zset', value: pairs.map(([m, s]) => [m, parseScore(s)]) }
  throw new Error(`rdb save: key '${key.toString('latin1', 0, 64)}' has type tag ${tag}, which RDB cannot carry`)
}

function parseScore (b: Buffer): number {
  const s = b.toString('latin1')
  return s === 'inf' ? Infinity : s === '-inf' ? -Infinity : Number(s)
}
