/**
 * `pagegift-kv`: starts the store, or, with --handoff, joins the running generation on that socket
 * and takes over its data, listeners and clients in a live upgrade.
 */
import { defaultAllocator } from './alloc.ts'
import { parseOptions, USAGE, type KvOptions } from './options.ts'
import type { Allocator } from './segments.ts'
import { startFresh } from './start.ts'

export async function main (argv: string[]): Promise<number> {
  const o = parseOptions(argv)
  if (typeof o === 'string') {
    process.stderr.write(o + '\n')
    return o === USAGE ? 0 : 2
  }
  // A server outlives whoever started it (`pagegift upgrade` exits after the commit): a closed
  // stdout or stderr must not take it down.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})
  const allocator = defaultAllocator()
  try {
    if (o.handoff !== null) {
      const { serveWithHandoff } = await import('./upgrade.ts')
      return await serveWithHandoff(o, allocator)
    }
    return await serveAlone(o, allocator)
  } catch (err) {
    // A dump that cannot be loaded stops the start with its reason, rather than serve part of it.
    const code = (err as { code?: string }).code ?? ''
    if (!code.startsWith('ERR_RDB_') && !(code === 'ENOENT' && o.load !== null)) throw err
    process.stderr.write(`pagegift-kv: cannot load ${o.load ?? o.snapshot ?? ''}: ${(err as Error).message} (${code})\n`)
    return 1
  }
}

async function serveAlone (o: KvOptions, allocator: Allocator): Promise<number> {
  const server = await startFresh(o, allocator)
  server.announce()
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve)
    process.once('SIGINT', resolve)
    void server.shutdownRequested.then(resolve)
  })
  await server.close()
  const err = server.saveOnShutdown()
  if (err !== null) process.stderr.write(err + '\n')
  return err === null ? 0 : 1
}
