/**
 * pagegift/map: a string -> bytes cache that stays warm across live upgrades. `attachMap(gen, name)`
 * adopts the predecessor's map (the same pages: O(1) at any size) or starts an empty one, and
 * contributes it to every later handoff: its regions are offered before the quiesce, so even a
 * 1 GiB map adds nothing to the pause. See docs/http.md.
 */
import { PagegiftError, type handoff } from '../index.ts'
import type { StoreMeta } from '../kv/store.ts'
import { Validator } from '../validate.ts'
import { LiveMap, type LiveMapOptions } from './map.ts'

export { LiveMap, type LiveMapOptions, type LiveMapStats, type MapState } from './map.ts'

const v = new Validator((why) => new PagegiftError('ERR_PAGEGIFT_MAP_META', `pagegift map: ${why}`))

/** The map's own meta travels as a small region, so that it adds up with the app's `meta`. */
interface MapMeta { kind: 'pagegift-map', version: 1, store: StoreMeta }

function encodeMeta (store: StoreMeta): ArrayBuffer {
  const bytes = Buffer.from(JSON.stringify({ kind: 'pagegift-map', version: 1, store } satisfies MapMeta))
  const ab = new ArrayBuffer(bytes.length)
  bytes.copy(Buffer.from(ab))
  return ab
}

function decodeMeta (ab: ArrayBuffer): StoreMeta {
  const o = v.obj(v.json(Buffer.from(ab).toString(), 'meta'), 'meta')
  if (o.kind !== 'pagegift-map' || o.version !== 1) v.fail('meta is not a version 1 pagegift map (a newer release wrote it?)')
  return v.obj(o.store, 'meta.store') as unknown as StoreMeta
}

/**
 * The map `name` of this service: the one the predecessor handed over (warm, no reload), or a new
 * empty one. From the quiesce on, this generation's copy is frozen (reads miss, writes are
 * refused): the successor owns the pages. A rollback makes it live again.
 */
export function attachMap (gen: handoff.Generation, name: string, opts: LiveMapOptions = {}): LiveMap {
  const prefix = `map.${name}.`
  const inherited = gen.inherited?.regions ?? {}
  let map: LiveMap
  if (inherited[`${prefix}meta`] !== undefined) {
    const regions: Record<string, ArrayBuffer> = {}
    for (const [k, r] of Object.entries(inherited)) if (k.startsWith(prefix) && k !== `${prefix}meta`) regions[k.slice(prefix.length)] = r
    map = LiveMap.adopt(name, regions, decodeMeta(inherited[`${prefix}meta`]), opts)
  } else {
    map = new LiveMap(name, opts)
  }
  const named = (regions: Record<string, ArrayBuffer>): Record<string, ArrayBuffer> =>
    Object.fromEntries(Object.entries(regions).map(([k, r]) => [`${prefix}${k}`, r]))
  gen.offerRegions(() => map.state === 'live' ? named(map.exportState().regions) : {})
  gen.onHandoff(() => {
    map.state = 'frozen'
    const { regions, meta } = map.exportState()
    return { regions: { ...named(regions), [`${prefix}meta`]: encodeMeta(meta) } }
  })
  gen.on('resumed', () => { if (map.state === 'frozen') map.state = 'live' })
  gen.on('handedOff', () => { map.state = 'gone'; map.close() })
  return map
}
