/**
 * The store's allocator: giftable memory from pagegift, so that its regions move on a live upgrade.
 * There is no silent fallback to the heap: a store that copied on upgrade would break its one
 * promise, so a missing addon is an error that says what to do.
 */
import { alloc, release } from '../index.ts'
import type { Allocator } from './segments.ts'

export function defaultAllocator (): Allocator {
  return {
    alloc: (bytes, name) => alloc(bytes, { name: `pagegift-kv.${name}` }),
    release: (region) => { release(region) }
  }
}
