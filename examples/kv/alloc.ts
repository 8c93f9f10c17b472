/**
 * The default allocator: giftable memory from pagegift's core when it is there (so regions move on
 * a live upgrade), else the JS heap. Tests and benchmarks may inject their own.
 */
import { heapAllocator, type Allocator } from './segments.ts'

interface Core {
  alloc (byteLength: number, opts?: { name?: string }): ArrayBuffer
  release (buf: ArrayBuffer): void
}

/** Loads the core's allocator, or returns the heap allocator if the core is not built. */
export async function defaultAllocator (): Promise<Allocator> {
  const core = await loadCore()
  if (core === null) return heapAllocator
  return {
    alloc: (bytes, name) => core.alloc(bytes, { name: `pagegift-kv.${name}` }),
    release: (region) => core.release(region)
  }
}

async function loadCore (): Promise<Core | null> {
  const specifier = '../../src/index.ts'
  try {
    const mod = await import(specifier) as Partial<Core>
    if (typeof mod.alloc !== 'function' || typeof mod.release !== 'function') return null
    return mod as Core
  } catch {
    return null
  }
}
