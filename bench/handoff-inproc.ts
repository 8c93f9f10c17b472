/**
 * `node --import tsx bench/handoff-inproc.ts [--conns=8] [--runs=50] [--no-offer]`: the handoff's
 * critical path in one process (both sides over an in-memory channel pair, as prime() runs it), with
 * `--conns` TCP connections (offered before the pause unless `--no-offer`) and a listener, timed by phase. One process means no scheduler between the marks:
 * what it shows is the CPU the pause's code costs, and how it grows with connections.
 */
import net from 'node:net'
import { channelPair } from '../src/channel.ts'
import { alloc, pageSize, release } from '../src/pages.ts'
import { Contributors } from '../src/handoff/contributors.ts'
import { defaultEnv } from '../src/handoff/env.ts'
import { adoptServer, adoptSocket, exportServer, exportSocket } from '../src/handoff/handles.ts'
import { handOff, type HandoffJob } from '../src/handoff/predecessor.ts'
import { parseFirst, PROTOCOL_VERSION } from '../src/handoff/protocol.ts'
import { inherit, takeOver } from '../src/handoff/successor.ts'
import { prime } from '../src/handoff/prime.ts'
import { Watchers } from '../src/handoff/watchers.ts'

const arg = (name: string, dflt: number): number => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt)
const conns = arg('conns', 8)
const runs = arg('runs', 50)
/** --no-offer: the connections travel only in STATE (wrapped inside the pause), as before offerSockets. */
const offer = !process.argv.includes('--no-offer')

async function once (): Promise<Record<string, number>> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const clients = Array.from({ length: conns }, () => net.connect(port, '127.0.0.1'))
  const accepted: net.Socket[] = []
  await new Promise<void>((resolve) => server.on('connection', (s) => { accepted.push(s); if (accepted.length === conns) resolve() }))
  const [a, b] = channelPair()
  const region = alloc(pageSize)
  const contributors = new Contributors()
  contributors.addQuiescer(() => ({ regions: { r: region }, handles: Object.fromEntries([['listener', exportServer(server)], ...accepted.map((s, i) => [`conn${i}`, exportSocket(s)])]) }))
  contributors.addOfferer(() => ({ r: region }))
  // Offered before the pause, as pagegift-kv and pagegift/http do: the successor wraps them while the predecessor serves.
  if (offer) contributors.addSocketOfferer(() => Object.fromEntries(accepted.map((s, i) => [`conn${i}`, s])))
  const watchers = new Watchers(defaultEnv)
  const job: HandoffJob = {
    hello: { t: 'hello', v: 1, max: PROTOCOL_VERSION, pid: process.pid, version: 'x' },
    v: PROTOCOL_VERSION, generation: 1, version: 'x', timeoutMs: 5000, pauseBudgetMs: 5000, layouts: {}, history: [],
    offer: () => contributors.offer(), offerSockets: () => contributors.offerSockets(), quiesce: async (s) => await contributors.quiesce(s), fenced: () => watchers.fenced, event: (e) => watchers.broadcast(e),
    point: async () => {},
  }
  const inheriting = inherit(defaultEnv, b, { version: 'x', key: null, layouts: {} }, 5000, async () => {})
  parseFirst((await a.recv({ timeoutMs: 5000 })).msg)
  const handing = handOff(defaultEnv, a, job)
  const inh = await inheriting
  const t0 = process.hrtime.bigint()
  const adopted: (net.Server | net.Socket)[] = [adoptServer(inh.inherited.handles.listener)]
  for (const [name, h] of Object.entries(inh.inherited.handles)) if (name !== 'listener') adopted.push(adoptSocket(h).socket)
  const appAdopt = Number(process.hrtime.bigint() - t0) / 1e6
  const rec = await takeOver(defaultEnv, inh, 5000, { generation: 2, version: 'x' })
  const result = await handing
  if (result.outcome !== 'committed') throw result.error
  await result.drain()
  for (const x of adopted) x instanceof net.Server ? x.close() : x.destroy()
  for (const c of clients) c.destroy()
  a.close(); b.close()
  for (const buf of [region, ...Object.values(inh.inherited.regions)]) { try { release(buf) } catch {} }
  return { ...(rec.phases as unknown as Record<string, number>), appAdopt, downtime: rec.downtimeMs ?? NaN }
}

await prime()
const all: Record<string, number[]> = {}
for (let i = 0; i < runs; i++) {
  const r = await once()
  if (i < 3) continue
  for (const [k, v] of Object.entries(r)) (all[k] ??= []).push(v)
}
const median = (xs: number[]): number => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(s.length / 2)] }
process.stdout.write(`${conns} connections${offer ? ' (offered)' : ''}, ${runs - 3} runs, medians in µs: ` + Object.entries(all).map(([k, v]) => `${k} ${(median(v) * 1000).toFixed(0)}`).join(', ') + '\n')
