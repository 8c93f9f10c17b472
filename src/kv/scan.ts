/**
 * SCAN's cursor, with Redis's guarantee: a key present for the whole iteration is returned at
 * least once, across deletes and index growth. The cursor names a home bucket (hash & mask), not a
 * slot: linear probing keeps every key in the run of full slots that starts at its home, and a
 * backward-shift delete never moves a key before its home, so "every key whose home is b" is found
 * by walking that run, whatever was deleted. Buckets are visited in reverse-binary order (Redis's
 * dictScan): when the index doubles, bucket b's keys move to b or b + old capacity, which the
 * reverse-binary increment visits together, so nothing visited is skipped and nothing skipped is
 * lost. While the index grows incrementally, lookups (and so SCAN) use the old index, which holds
 * every key until the switch.
 */
import type { Store } from './store.ts'

/** Empty buckets one SCAN call may pass over: cheap, and enough to cover a fresh index in one call. */
const EMPTY_BUDGET = 65536

/** Reverses the bits of a 32-bit number. */
function rev32 (v: number): number {
  v = ((v >>> 1) & 0x55555555) | ((v & 0x55555555) << 1)
  v = ((v >>> 2) & 0x33333333) | ((v & 0x33333333) << 2)
  v = ((v >>> 4) & 0x0f0f0f0f) | ((v & 0x0f0f0f0f) << 4)
  v = ((v >>> 8) & 0x00ff00ff) | ((v & 0x00ff00ff) << 8)
  return ((v >>> 16) | (v << 16)) >>> 0
}

/** The next cursor after bucket `v` of an index with `mask`: increments the reversed bits above the mask. */
export function nextCursor (v: number, mask: number): number {
  return rev32((rev32((v | ~mask) >>> 0) + 1) >>> 0)
}

/**
 * Visits buckets from `cursor` until `count` keys are collected (or 10 x count buckets were
 * visited), calling `take` for each slot whose key's home is the bucket. Returns the next cursor
 * (0: done).
 */
export function scanBuckets (store: Store, cursor: number, count: number, take: (slot: number) => boolean): number {
  const { t, mask } = store.index
  let v = cursor >>> 0
  let found = 0
  let full = 0
  // Redis visits at most 10 x count buckets; its tables are sized to their keys. This index starts
  // at thousands of slots, so an empty bucket (one read: its home slot is empty) is not counted
  // until there have been many, and a small keyspace is still answered in one call.
  for (let empty = 0; full < count * 10 && empty < EMPTY_BUDGET && found < count;) {
    const b = v & mask
    if (t[b << 2] === 0) empty++
    else full++
    for (let i = b; t[i << 2] !== 0; i = (i + 1) & mask) {
      if ((t[i << 2] & mask) === b && take(i)) found++
    }
    v = nextCursor(v, mask)
    if (v === 0) break
  }
  return v
}
