/**
 * prime(): both sides of a handoff rehearsed in memory, once per process, leaving no fd or mapping
 * behind; rehearsal(): an app's own adoption rehearsed on its own connections; yieldCpu().
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import net from 'node:net'
import { test } from 'node:test'
import { adoptSocket, exportSocket, prime, rehearsal } from '../src/handoff/index.ts'
import { runScript } from './helpers.ts'

/** Open fds as "number -> target"; an fd that closes between two listings is skipped. */
function fds (): Set<string> {
  const out = new Set<string>()
  for (const n of readdirSync('/proc/self/fd')) {
    try { out.add(`${n} -> ${readlinkSync(`/proc/self/fd/${n}`)}`) } catch {}
  }
  return out
}
const mappings = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('pagegift')).length

test('prime() rehearses a whole handoff once, and cleans up after itself', async () => {
  const before = { fds: fds(), maps: mappings() }
  assert.equal(await prime(), true)
  assert.equal(await prime(), true, 'later calls share the first')
  await new Promise((resolve) => setTimeout(resolve, 50))
  // Only new fds count: the runtime may close one of its own meanwhile (CI saw 28 -> 27).
  assert.deepEqual([...fds()].filter((f) => !before.fds.has(f)), [])
  assert.equal(mappings(), before.maps)
})

/** Reads from `s` until `want` bytes arrived or `ms` passed: whatever arrived. */
async function readFor (s: net.Socket, want: number, ms: number): Promise<string> {
  let got = ''
  const onData = (d: Buffer): void => { got += d.toString('latin1') }
  s.on('data', onData)
  const until = Date.now() + ms
  while (got.length < want && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5))
  s.off('data', onData)
  return got
}

test('rehearsal(): an app adopts its own exported connections in process, gated until commit, and nothing leaks', async () => {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const before = fds()
  const accepted: net.Socket[] = []
  server.on('connection', (s) => accepted.push(s))
  const clients = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')]
  while (accepted.length < 3) await new Promise((resolve) => setTimeout(resolve, 5))
  // The third closes before its export: it is left out, as a handoff leaves it out.
  accepted[2].destroy()
  const exported = { a: exportSocket(accepted[0]), b: exportSocket(accepted[1]), c: exportSocket(accepted[2]) }
  const r = rehearsal(exported)
  assert.deepEqual(Object.keys(r.handles), ['a', 'b'])
  // Adopt one; the other is never adopted and must be closed by the commit.
  const { socket } = adoptSocket(r.handles.a)
  clients[0].write('before commit')
  assert.equal(await readFor(socket, 1, 100), '', 'nothing is read before the commit')
  r.commit()
  assert.equal(await readFor(socket, 13, 5000), 'before commit', 'after the commit the adopted socket reads what waited')
  socket.write('from the twin')
  assert.equal(await readFor(clients[0], 13, 5000), 'from the twin')
  assert.throws(() => adoptSocket(r.handles.b), { code: 'ERR_PAGEGIFT_HANDOFF_HANDLE' }, 'commit closed the handle nobody adopted')
  socket.destroy()
  for (const s of [...clients, ...accepted]) s.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual([...fds()].filter((f) => !before.has(f)), [])
})

test('yieldCpu() makes every thread of the process SCHED_IDLE, the thread pool\'s included', async () => {
  // In a child: the policy cannot be taken back. Field 41 of a task's stat is its policy (5: SCHED_IDLE).
  const env = new URL('../src/handoff/env.ts', import.meta.url).pathname
  const code = `
    import { readdirSync, readFileSync } from 'node:fs'
    import { pbkdf2 } from 'node:crypto'
    import { defaultEnv } from ${JSON.stringify(env)}
    const policies = () => readdirSync('/proc/self/task').map((t) => { const s = readFileSync('/proc/self/task/' + t + '/stat', 'utf8'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[38]) })
    // Start libuv's pool: its threads are what os.setPriority() (one thread on Linux) missed.
    await new Promise((resolve) => pbkdf2('x', 'y', 1, 8, 'sha256', resolve))
    const before = policies()
    defaultEnv.yieldCpu()
    console.log(JSON.stringify({ before, after: policies() }))`
  const out = await runScript(code, {}, 30_000)
  const { before, after } = JSON.parse(out) as { before: number[], after: number[] }
  assert.ok(before.length >= 5 && before.every((p) => p === 0), `threads start SCHED_OTHER: ${before.join(',')}`)
  assert.deepEqual(after, after.map(() => 5), `every thread is SCHED_IDLE: ${after.join(',')}`)
})
