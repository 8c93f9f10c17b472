/** Starting a first generation: an empty store, or one loaded from its snapshot file, then listen. */
import { existsSync } from 'node:fs'
import type { KvOptions } from './options.ts'
import type { Allocator } from './segments.ts'
import { KvServer } from './server.ts'
import { loadRdb } from './rdb/store.ts'
import { Databases } from './databases.ts'
import { warmUp } from './warmup.ts'

export async function startFresh (o: KvOptions, allocator: Allocator): Promise<KvServer> {
  const dbs = new Databases(o.databases, { allocator, maxmemory: o.maxmemory, segmentSize: o.segmentSize })
  const server = new KvServer(dbs)
  // --load must exist; --snapshot is loaded if it does (a first start has none yet).
  const from = o.load ?? (o.snapshot !== null && existsSync(o.snapshot) ? o.snapshot : null)
  if (from !== null) {
    const r = await loadRdb(server, from)
    process.stdout.write(`pagegift-kv: loaded ${r.keys} keys (${r.bytes} bytes, ${r.expiredSkipped} expired skipped, checksum ${r.checksum ?? 'none'}) from ${from} in ${r.ms.toFixed(1)} ms\n`)
  }
  server.snapshotPath = o.snapshot
  server.rdbOutPath = o.rdbOut
  server.setPassword(o.requirepass)
  await warmUp()
  await server.listen(o.port, o.bind)
  return server
}
