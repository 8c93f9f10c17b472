/**
 * The handoff bench's load clients in a process of their own: `node --import tsx
 * bench/handoff-clients.ts <port> <clients>`. A real service's clients are other processes; in the
 * bench's own process they would share an event loop with its bookkeeping (the services' reports
 * on their stdout, the old generation's exit), which lands exactly when their first answers from
 * the new generation do, and would count as pause.
 *
 * Each crossing is one line of JSON on stdout: `{ slot, gen, last, first, maxWaitMs }`, with the
 * client's last answer from the old generation and first from the new one (CLOCK_MONOTONIC ns, as
 * decimal strings: one clock for the host), and its longest wait for an answer since its previous
 * crossing. A failed client prints `{ slot, failed }`. Lines go out 25 ms after the first of a
 * batch, not at once (see say()). It exits when stdin closes (the bench ended
 * or died) and after 30 minutes in any case.
 */
import { LoadClient } from './handoff-load.ts'

const [port, n] = process.argv.slice(2).map(Number)
if (!(port > 0) || !(n > 0)) {
  process.stderr.write('usage: handoff-clients.ts <port> <clients>\n')
  process.exit(2)
}
// Reports wait 25 ms and go out together: a write per crossing wakes the bench, which then shares a
// CPU with these clients just as their first answers from the new generation come in.
let lines: string[] = []
const flush = (): void => { process.stdout.write(lines.join('')); lines = [] }
const say = (o: Record<string, unknown>): void => {
  if (lines.length === 0) setTimeout(flush, 25)
  lines.push(JSON.stringify(o) + '\n')
}
const clients = Array.from({ length: n }, (_, slot) => new LoadClient(port, slot, (gen, edge) => {
  const c = clients[slot]
  say({ slot, gen, last: edge.last.toString(), first: edge.first.toString(), maxWaitMs: c.maxWaitMs })
  c.maxWaitMs = 0
}, (failed) => { say({ slot, failed }) }))
const stop = (): void => { for (const c of clients) c.close(); process.exit(0) }
process.stdin.on('end', stop).on('error', stop).resume()
setTimeout(stop, 30 * 60_000).unref()
