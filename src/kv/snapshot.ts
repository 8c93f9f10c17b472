/**
 * Snapshots to a file: what a restart without live upgrade needs. It is the cheapest serialization
 * there is (records copied as they lie in the segments), so it is a fair baseline for comparing a
 * restart-and-reload with a live upgrade. Loading does per-key work, as any reload must.
 */
import { closeSync, fsyncSync, openSync, readSync, renameSync, writeSync, fstatSync } from 'node:fs'
import { HEADER } from './segments.ts'
import type { Store } from './store.ts'

const MAGIC = 'PGKVSNP1'
const CHUNK = 16 * 1024 * 1024

export interface SnapshotReport { keys: number, bytes: number, ms: number }

/** Writes every live key to `path` (through a temp file and rename, fsynced). */
export function saveSnapshot (store: Store, path: string): SnapshotReport {
  const t0 = performance.now()
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', 0o600)
  const out = Buffer.allocUnsafe(CHUNK)
  let pos = out.write(MAGIC, 'latin1')
  let bytes = 0
  let keys = 0
  const flush = (): void => { writeSync(fd, out, 0, pos); bytes += pos; pos = 0 }
  try {
    for (let i = 0; i < store.index.capacity; i++) {
      if (!store.at(i)) continue
      const { seg, off } = store
      const at = seg.expireAt(off)
      if (at !== 0 && at <= Date.now()) continue
      // A collection's record holds only a ref into the collections heap, which this format does not carry.
      if (seg.type(off) !== 0) continue
      const size = HEADER + seg.keyLen(off) + seg.valLen(off)
      if (pos + size > out.length) flush()
      if (size > out.length) {
        writeSync(fd, seg.bytes, off, size)
        bytes += size
      } else {
        seg.bytes.copy(out, pos, off, off + size)
        pos += size
      }
      keys++
    }
    flush()
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  return { keys, bytes, ms: performance.now() - t0 }
}

/** Loads a snapshot into an empty store, key by key. Throws on a file that is not a snapshot. */
export function loadSnapshot (store: Store, path: string): SnapshotReport {
  const t0 = performance.now()
  const fd = openSync(path, 'r')
  const total = fstatSync(fd).size
  let buf = Buffer.allocUnsafe(CHUNK)
  let have = 0
  let offset = 0
  let keys = 0
  const now = Date.now()
  try {
    const fill = (): number => {
      if (have === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2)
        buf.copy(bigger, 0, 0, have)
        buf = bigger
      }
      const n = readSync(fd, buf, have, buf.length - have, offset)
      offset += n
      have += n
      return n
    }
    fill()
    if (buf.toString('latin1', 0, MAGIC.length) !== MAGIC) throw new TypeError(`${path} is not a pagegift-kv snapshot`)
    let p = MAGIC.length
    for (;;) {
      if (have - p < HEADER || have - p < HEADER + buf.readUInt32LE(p + 4) + buf.readUInt32LE(p + 8)) {
        buf.copy(buf, 0, p, have)
        have -= p
        p = 0
        if (fill() === 0) break
        continue
      }
      const klen = buf.readUInt32LE(p + 4)
      const vlen = buf.readUInt32LE(p + 8)
      const at = buf.readDoubleLE(p + 16)
      const ks = p + HEADER
      if (at === 0 || at > now) {
        const slot = store.find(buf, ks, ks + klen)
        if (!store.write(slot, buf, ks, ks + klen, buf, ks + klen, ks + klen + vlen, at)) throw new RangeError('snapshot does not fit maxmemory')
        keys++
      }
      p = ks + klen + vlen
    }
    if (have !== 0) throw new TypeError(`${path}: truncated snapshot`)
  } finally {
    closeSync(fd)
  }
  return { keys, bytes: total, ms: performance.now() - t0 }
}
