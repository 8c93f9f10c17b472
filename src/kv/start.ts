/** Starting a first generation: an empty store, or one loaded from its snapshot file, then listen. */
import { existsSync } from 'node:fs'
import type { KvOptions } from './options.ts'
import type { Allocator } from './segments.ts'
import { KvServer } from './server.ts'
import { loadSnapshot } from './snapshot.ts'
import { Databases } from './databases.ts'

export async function startFresh (o: KvOptions, allocator: Allocator): Promise<KvServer> {
  const dbs = new Databases(o.databases, { allocator, maxmemory: o.maxmemory, segmentSize: o.segmentSize })
  const store = dbs.db(0)
  if (o.snapshot !== null && existsSync(o.snapshot)) {
    const r = loadSnapshot(store, o.snapshot)
    process.stdout.write(`pagegift-kv: loaded ${r.keys} keys (${r.bytes} bytes) from ${o.snapshot} in ${r.ms.toFixed(1)} ms\n`)
  }
  const server = new KvServer(dbs)
  server.snapshotPath = o.snapshot
  server.setPassword(o.requirepass)
  await server.listen(o.port, o.bind)
  return server
}
