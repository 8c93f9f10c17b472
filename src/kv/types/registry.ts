/**
 * Each store (database) has one collections heap. It is made on first use and carried by the
 * store's exported state (regions `types.N` plus a small meta, see Store.typeRegions), so a successor
 * adopts it in O(1). The types register here what the store must do for their records: free a
 * collection with its key, deep-copy one for COPY/MOVE/RENAME, forget the heap on flush.
 */
import { Store, typeOps, typeRegions } from '../store.ts'
import type { Segment } from '../segments.ts'
import { TypeHeap, offOf, type HeapMeta } from './heap.ts'
import { Dict, HASH, SET, ZSET, entryBytes } from './dict.ts'
import { Lists, eA, eS, eE } from './list.ts'
import { ZSets, mA, mS, mE } from './zset.ts'

/** The tag's encoding bits (above the type byte) of a record whose value is a collections heap ref. */
export const HEAP_REF = 1 << 8

/** True if the record at seg/off is a collection record this module wrote: a 4-byte ref, HEAP_REF encoding. */
export function isHeapRecord (seg: Segment, off: number): boolean {
  return (seg.tag(off) & ~0xff) === HEAP_REF && seg.valLen(off) === 4
}

export class Types {
  readonly heap: TypeHeap
  readonly dict: Dict
  readonly lists: Lists
  readonly zsets: ZSets

  constructor (heap: TypeHeap, hashOf: (b: Buffer, s: number, e: number) => number) {
    this.heap = heap
    this.dict = new Dict(heap)
    this.lists = new Lists(heap)
    this.zsets = new ZSets(heap, this.dict, hashOf)
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

/** The last store asked about and its Types: commands ask several times each, mostly for one store. */
let lastStore: Store | null = null
let lastTypes: Types | null = null

export function typesOf (store: Store): Types {
  if (store === lastStore && store.adoptedTypes === null) return lastTypes as Types
  const t = lookupTypes(store)
  lastStore = store
  lastTypes = t
  return t
}

function lookupTypes (store: Store): Types {
  let t = byStore.get(store)
  if (t === undefined) {
    const adopted = store.adoptedTypes
    store.adoptedTypes = null
    if (adopted !== null) return adoptTypes(store, adopted.regions, adopted.meta as HeapMeta)
    t = new Types(new TypeHeap(store.allocator), (b, s, e) => store.keyHash.of(b, s, e))
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
  const t = new Types(new TypeHeap(store.allocator, { regions: list, meta }), (b, s, e) => store.keyHash.of(b, s, e))
  byStore.set(store, t)
  return t
}

/** The heap's regions and meta for the store's exported state (none if it has no collections heap). */
export function exportTypes (store: Store): { regions: Record<string, ArrayBuffer>, meta: HeapMeta } | null {
  if (store.adoptedTypes !== null) typesOf(store)
  const t = byStore.get(store)
  if (t === undefined || t.heap.regions.length === 0) return null
  const regions: Record<string, ArrayBuffer> = {}
  t.heap.regions.forEach((r, i) => { regions[`types.${i}`] = r })
  return { regions, meta: t.heap.meta() }
}

/** The header ref a typed record's value holds. */
export function recordRef (seg: Segment, off: number): number {
  return seg.bytes.readUInt32LE(seg.valStart(off))
}

/** Deep copy of collection `ref` (RDB type `type`) from one store's heap into another's (or the same). */
export function copyCollection (from: Types, type: number, ref: number, to: Types, hashOf: (b: Buffer, s: number, e: number) => number): number {
  if (type === 1) {
    const hd = to.lists.create()
    const l = from.lists
    if (l.count(ref) === 0) return hd
    l.at(ref, 0)
    // Pushing may add an arena to `to` (the same heap for COPY), never move one: positions stay valid.
    do to.lists.push(hd, false, l.h.b[eA], eS, eE); while (l.next())
    return hd
  }
  if (type === 3) {
    const hd = to.zsets.create()
    const z = from.zsets
    for (let x = z.fwd(z.head(ref), 0); x !== 0; x = z.fwd(x, 0)) {
      z.member(x)
      const b = z.h.b[mA]; const s = mS; const e = mE
      to.zsets.insert(hd, hashOf(b, s, e), z.score(x), b, s, e)
    }
    return hd
  }
  const kind = type === 4 ? HASH : SET
  const hd = to.dict.create(3)
  const d = from.dict
  const cap = d.cap(ref)
  for (let i = 0; i < cap; i++) {
    const e = d.at(ref, i)
    if (e === 0) continue
    const bytes = entryBytes(from.heap, kind, e)
    const n = to.heap.alloc(bytes)
    from.heap.b[e >>> 23].copy(to.heap.b[n >>> 23], offOf(n), offOf(e), offOf(e) + bytes)
    const ks = offOf(n) + (kind === HASH ? 8 : 4)
    const klen = to.heap.u32[n >>> 23][offOf(n) >>> 2]
    to.dict.insert(hd, hashOf(to.heap.b[n >>> 23], ks, ks + klen), n)
  }
  return hd
}

for (const type of [1, 2, 3, 4]) {
  typeOps[type] = {
    drop (store: Store, seg: Segment, off: number): void {
      // Only what this module wrote points into the heap; anything else has nothing to free.
      if (!isHeapRecord(seg, off) || !typesOf(store).heap.valid(recordRef(seg, off))) return
      typesOf(store).drop(type, recordRef(seg, off))
    },
    copy (from: Store, seg: Segment, off: number, to: Store): Buffer {
      if (!isHeapRecord(seg, off) || !typesOf(from).heap.valid(recordRef(seg, off))) return Buffer.from(seg.bytes.subarray(seg.valStart(off), seg.valStart(off) + seg.valLen(off)))
      const ref = copyCollection(typesOf(from), type, recordRef(seg, off), typesOf(to), (b, s, e) => to.keyHash.of(b, s, e))
      const out = Buffer.alloc(4)
      out.writeUInt32LE(ref, 0)
      return out
    },
    encoding (store: Store, seg: Segment, off: number): string {
      if (type === 1) return 'quicklist'
      if (type !== 3 || !isHeapRecord(seg, off) || !typesOf(store).heap.valid(recordRef(seg, off))) return 'hashtable'
      return typesOf(store).zsets.packed(recordRef(seg, off)) ? 'listpack' : 'skiplist'
    },
    flushed (store: Store): void {
      if (store.adoptedTypes !== null) typesOf(store)
      byStore.get(store)?.heap.clear()
    }
  }
}
typeRegions.exportState = exportTypes
typeRegions.used = (store: Store): number => byStore.get(store)?.heap.used ?? 0

export { ZSET }
