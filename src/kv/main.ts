/**
 * `pagegift-kv`: starts the store, or, with --handoff, joins the running generation on that socket
 * and takes over its data, listeners and clients in a live upgrade.
 */
import { defaultAllocator } from './alloc.ts'
import { parseOptions, USAGE } from './options.ts'
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
  if (o.handoff !== null) {
    const { serveWithHandoff } = await import('./upgrade.ts')
    return await serveWithHandoff(o, allocator)
  }
  const server = await startFresh(o, allocator)
  server.announce()
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve)
    process.once('SIGINT', resolve)
  })
  await server.close()
  return 0
}
