/**
 * Each store (database) has one collections heap. It is made on first use and carried by the
 * store's exported state (regions `types.N` plus a small meta), so a successor adopts it in O(1).
 */
import { Store } from '../store.ts'
import type { Segment } from '../segments.ts'
import { TypeHeap, type HeapMeta } from './heap.ts'
import { Dict, HASH, SET, ZSET } from './dict.ts'
import { Lists } from './list.ts'
import { ZSets } from './zset.ts'

export class Types {
  readonly heap: TypeHeap
  readonly dict: Dict
  readonly lists: Lists
  readonly zsets: ZSets

  constructor (heap: TypeHeap) {
    this.heap = heap
    this.dict = new Dict(heap)
    this.lists = new Lists(heap)
    this.zsets = new ZSets(heap, this.dict)
  }

  /** Frees collection `ref` of RDB type `type` (its key is being deleted or overwritten). */
  drop (type: number, ref: number): void {
    if (type === 1) this.lists.destroy(ref)
    else if (type === 2) this.dict.destroy(ref, SET, 3)
    else if (type === 4) this.dict.destroy(ref, HASH, 3)
    else if (type === 3) this.zsets.destroy(ref)
  }
}

const byStore = new WeakMap<Store, Types>()

export function typesOf (store: Store): Types {
  let t = byStore.get(store)
  if (t === undefined) {
    const adopted = store.adoptedTypes
    store.adoptedTypes = null
    if (adopted !== null) return adoptTypes(store, adopted.regions, adopted.meta as HeapMeta)
    t = new Types(new TypeHeap(store.allocator))
    byStore.set(store, t)
  }
  return t
}

/** Wraps a predecessor's heap regions for `store`. */
export function adoptTypes (store: Store, regions: Record<string, ArrayBuffer>, meta: HeapMeta): Types {
  if (meta === null || typeof meta !== 'object' || !Array.isArray(meta.arenas)) throw new TypeError('kv store meta: bad collections heap meta')
  const list: ArrayBuffer[] = []
  for (let i = 0; i < meta.arenas.length; i++) {
    const r = regions[`types.${i}`]
    if (r === undefined) throw new TypeError(`kv store: collections arena ${i} missing`)
    list.push(r)
  }
  const t = new Types(new TypeHeap(store.allocator, { regions: list, meta }))
  byStore.set(store, t)
  return t
}

/** The heap's regions and meta for the store's exported state (none if it has no collections heap). */
export function exportTypes (store: Store): { regions: Record<string, ArrayBuffer>, meta: HeapMeta } | null {
  const t = byStore.get(store)
  if (t === undefined) return null
  const regions: Record<string, ArrayBuffer> = {}
  t.heap.regions.forEach((r, i) => { regions[`types.${i}`] = r })
  return { regions, meta: t.heap.meta() }
}

Store.types = {
  drop (store: Store, seg: Segment, off: number): void {
    const type = seg.u32[(off >>> 2) + 3] & 0xff
    typesOf(store).drop(type, seg.bytes.readUInt32LE(seg.valStart(off)))
  },
  flush (store: Store): void {
    if (store.adoptedTypes !== null) typesOf(store)
    byStore.get(store)?.heap.clear()
    store.adoptedTypes = null
  },
  exportState (store: Store) {
    if (store.adoptedTypes !== null) typesOf(store)
    return exportTypes(store)
  }
}

export { ZSET }
