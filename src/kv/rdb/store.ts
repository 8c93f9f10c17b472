/**
 * RDB in and out of the store: `loadRdb` fills an empty store from a Redis dump (at start-up, before
 * any client), `saveRdb` writes the store as a dump that redis-server loads. A load that fails part
 * way throws: the caller must not serve a store it half-filled.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { rdbError } from './errors.ts'
import type { RdbKey } from './format.ts'
import { fileSource } from './input.ts'
import { RdbReader } from './reader.ts'
import { RdbWriter } from './writer.ts'
import type { Store } from '../store.ts'

export interface RdbLoadReport { keys: number, expiredSkipped: number, bytes: number, ms: number, checksum: 'verified' | 'absent' | null }
export interface RdbSaveReport { keys: number, bytes: number, ms: number }

/** Loads `path` into `store`, which should be empty. Keys already expired are skipped, as Redis does. */
export async function loadRdb (store: Store, path: string): Promise<RdbLoadReport> {
  const t0 = performance.now()
  const reader = new RdbReader(fileSource(path))
  const report: RdbLoadReport = { keys: 0, expiredSkipped: 0, bytes: reader.in.size, ms: 0, checksum: null }
  const now = Date.now()
  await reader.forEach((k) => {
    if (k.expireAt !== 0 && k.expireAt <= now) { report.expiredSkipped++; return }
    put(store, k)
    report.keys++
  })
  report.checksum = reader.checksum
  report.ms = performance.now() - t0
  return report
}

function put (store: Store, k: RdbKey): void {
  if (k.db !== 0) throw rdbError('ERR_RDB_DB_RANGE', `key in database ${k.db}: this store has database 0 only`)
  if (k.value.type !== 'string') throw rdbError('ERR_RDB_UNSUPPORTED', `key '${k.key.toString('latin1', 0, 64)}' is a ${k.value.type}, which this store does not hold yet`)
  const slot = store.find(k.key, 0, k.key.length)
  if (slot >= 0) throw rdbError('ERR_RDB_DUPLICATE_KEY', `key '${k.key.toString('latin1', 0, 64)}' appears twice in database ${k.db}`)
  const v = k.value.value
  if (!store.write(slot, k.key, 0, k.key.length, v, 0, v.length, k.expireAt)) throw rdbError('ERR_RDB_OOM', 'the file does not fit maxmemory')
}

/**
 * Writes every live key to `path` as RDB 10 (a temp file, fsynced, then renamed over `path`), in one
 * go: like Redis's SAVE, it is a point-in-time copy because nothing runs while it writes.
 */
export function saveRdb (store: Store, path: string, opts: { compress?: boolean } = {}): RdbSaveReport {
  const t0 = performance.now()
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', 0o600)
  let keys = 0
  let w: RdbWriter
  try {
    w = new RdbWriter((chunk) => { writeSync(fd, chunk) }, opts)
    w.aux('redis-ver', '7.0.0')
    w.aux('redis-bits', '64')
    w.aux('ctime', String(Math.floor(Date.now() / 1000)))
    w.aux('pagegift-kv', '1')
    const now = Date.now()
    w.selectDb(0, store.size, store.expires)
    for (let i = 0; i < store.index.capacity; i++) {
      if (!store.at(i)) continue
      const { seg, off } = store
      const at = seg.expireAt(off)
      if (at !== 0 && at <= now) continue
      const ks = seg.keyStart(off)
      const vs = seg.valStart(off)
      w.key(seg.bytes.subarray(ks, ks + seg.keyLen(off)), { type: 'string', value: seg.bytes.subarray(vs, vs + seg.valLen(off)) }, at)
      keys++
    }
    w.end()
    fsyncSync(fd)
  } catch (err) {
    closeSync(fd)
    rmSync(tmp, { force: true })
    throw err
  }
  closeSync(fd)
  renameSync(tmp, path)
  return { keys, bytes: w.bytes, ms: performance.now() - t0 }
}
