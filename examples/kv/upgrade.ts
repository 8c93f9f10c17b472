/** Live upgrade glue: filled in when the handoff API lands. */
import type { KvOptions } from './options.ts'
import type { Allocator } from './segments.ts'

export async function serveWithHandoff (_o: KvOptions, _allocator: Allocator): Promise<number> {
  process.stderr.write('pagegift-kv: --handoff needs the handoff API (src/handoff), not built yet\n')
  return 1
}
