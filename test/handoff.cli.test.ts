/** `pagegift upgrade` and `pagegift status` against real service processes. */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { LineClient, serviceFixture, startService, tempSocket, type Service } from './fixtures/handoff-harness.ts'
import { runCli } from './helpers.ts'

const services: Service[] = []
const extraPids: number[] = []
after(() => {
  for (const s of services) s.kill()
  for (const pid of extraPids) { try { process.kill(pid, 'SIGKILL') } catch {} }
})

/** Runs the CLI with the test's environment plus `env`; resolves at its exit. */
const cli = async (args: string[], env: Record<string, string> = {}): ReturnType<typeof runCli> => await runCli(args, { ...process.env, ...env })

const successor = (extra: string[] = []): string[] => ['--', 'env', ...extra, process.execPath, '--import', 'tsx', serviceFixture]

/** Starts generation 1 of the test service and connects a client once it serves. */
async function firstGeneration (env: Record<string, string>): Promise<LineClient> {
  const gen1 = startService(env)
  services.push(gen1)
  const { port } = await gen1.wait('listening') as unknown as { port: number }
  await gen1.wait('serving')
  return new LineClient(port)
}

test('status prints the generation, and --json parses; a missing socket is a clear error', async () => {
  const sock = tempSocket()
  try {
    const gen1 = startService({ HANDOFF_SOCK: sock.path, HANDOFF_VERSION: 'v1' })
    services.push(gen1)
    await gen1.wait('serving')
    const text = await cli(['status', sock.path])
    assert.equal(text.code, 0, text.err)
    assert.match(text.out, new RegExp(`^generation 1  pid ${gen1.pid}  version v1  uptime .*serving`))
    assert.match(text.out, /regions \(1, 1 MiB\):\n {2}counters {2}1 MiB/)
    const json = await cli(['status', sock.path, '--json'])
    const st = JSON.parse(json.out) as { generation: number, pid: number, regions: { name: string, bytes: number }[], history: unknown[] }
    assert.equal(st.generation, 1)
    assert.equal(st.pid, gen1.pid)
    assert.deepEqual(st.regions, [{ name: 'counters', bytes: 1 << 20 }])
    const missing = await cli(['status', sock.path + '.nope'])
    assert.equal(missing.code, 1)
    assert.match(missing.err, /no generation is serving/)
  } finally {
    sock.cleanup()
  }
})

test('upgrade commits: downtime, bytes and path per region; the new generation serves', async () => {
  const sock = tempSocket()
  try {
    const c = await firstGeneration({ HANDOFF_SOCK: sock.path })
    assert.equal(await c.request('INC 1'), '1 1')
    const r = await cli(['upgrade', sock.path, ...successor([`HANDOFF_SOCK=${sock.path}`, 'HANDOFF_VERSION=v2'])])
    assert.equal(r.code, 0, r.err)
    assert.match(r.out, /^committed: generation 2 \(pid \d+\) is serving/m)
    assert.match(r.out, /^downtime: [\d.]+ (ms|µs) \(stopped serving -> successor serving, CLOCK_MONOTONIC\)/m)
    assert.match(r.out, /^pause by phase: quiesce [\d.]+ (ms|µs), STATE sent [\d.]+ (ms|µs), fds adopted [\d.]+ (ms|µs), READY [\d.]+ (ms|µs), COMMIT [\d.]+ (ms|µs), SERVING [\d.]+ (ms|µs), gate open [\d.]+ (ms|µs)$/m)
    assert.match(r.out, /^moved: 1 MiB in 1 region\(s\), 2 handle\(s\)/m)
    assert.match(r.out, /^ {2}region counters {2}1 MiB {2}share$/m)
    assert.match(r.err, /successor pid \d+ \(v2\) connected/)
    assert.equal(await c.request('INC 1'), '2 2')
    const st = await cli(['status', sock.path, '--json'])
    const report = JSON.parse(st.out) as { generation: number, pid: number, version: string, history: { downtimeMs: number }[] }
    extraPids.push(report.pid)
    assert.equal(report.generation, 2)
    assert.equal(report.version, 'v2')
    assert.equal(report.history.length, 1)
    assert.ok(report.history[0].downtimeMs > 0)
    const text = await cli(['status', sock.path])
    assert.match(text.out, /^last handoff by phase: quiesce [\d.]+ (ms|µs), STATE sent .*, SERVING [\d.]+ (ms|µs), gate open [\d.]+ (ms|µs)$/m)
    c.close()
  } finally {
    sock.cleanup()
  }
})

test('upgrade rolls back: a stuck successor is killed, the old generation still serves, exit 1', async () => {
  const sock = tempSocket()
  try {
    const c = await firstGeneration({ HANDOFF_SOCK: sock.path })
    assert.equal(await c.request('INC 1'), '1 1')
    // Long enough for the successor to start and say HELLO on a loaded machine (1.5 s was not, with load averages near 20).
    const r = await cli(['upgrade', sock.path, '--timeout', '5000', ...successor([`HANDOFF_SOCK=${sock.path}`, 'HANDOFF_STALL_AT=successor:hello-sent'])])
    assert.equal(r.code, 1, r.out + r.err)
    assert.match(r.err, /no commit within 5000 ms: killed the successor/)
    assert.match(r.err, /rolled back: .*\[ERR_PAGEGIFT_HANDOFF_SUCCESSOR_GONE\].*Generation 1 \(pid \d+\) is still serving/)
    assert.equal(await c.request('INC 1'), '1 2')
    const failing = await cli(['upgrade', sock.path, ...successor([`HANDOFF_SOCK=${sock.path}`, 'HANDOFF_KILL_AT=successor:hello-sent'])])
    assert.equal(failing.code, 1)
    assert.match(failing.err, /rolled back: .*successor killed by SIGKILL|rolled back: .*SUCCESSOR_GONE/)
    assert.equal(await c.request('INC 1'), '1 3')
    c.close()
  } finally {
    sock.cleanup()
  }
})

test('upgrade of a region that is not giftable: it is copied down the ladder, with progress', async () => {
  const sock = tempSocket()
  try {
    const c = await firstGeneration({ HANDOFF_SOCK: sock.path, HANDOFF_PLAIN_REGION: '1', HANDOFF_REGION_BYTES: String(40 << 20) })
    assert.equal(await c.request('INC 9'), '1 1')
    const r = await cli(['upgrade', sock.path, ...successor([`HANDOFF_SOCK=${sock.path}`])])
    assert.equal(r.code, 0, r.err)
    assert.match(r.err, /copying region counters: 40 MiB \/ 40 MiB \(100%\)/)
    assert.match(r.out, /^ {2}region counters {2}40 MiB {2}(cma|splice|copy) \(source not giftable/m)
    assert.equal(await c.request('INC 9'), '2 2', 'the copied region kept its contents')
    const st = JSON.parse((await cli(['status', sock.path, '--json'])).out) as { pid: number }
    extraPids.push(st.pid)
    c.close()
  } finally {
    sock.cleanup()
  }
})

test('upgrade usage errors', async () => {
  assert.equal((await cli(['upgrade', '/tmp/x.sock'])).code, 2)
  const none = await cli(['upgrade', '/tmp/pagegift-no-such.sock', '--', 'true'])
  assert.equal(none.code, 1)
  assert.match(none.err, /no generation is serving/)
})
