/** Contributors add up: two parts of one app each offer regions and quiesce their part (one process, a real socket). */
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import { alloc, release } from '../src/index.ts'
import { adoptServer, exportServer, join, type Generation } from '../src/handoff/index.ts'
import { tempSocket } from './fixtures/handoff-harness.ts'

async function listening (): Promise<net.Server> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

test('two contributors: regions, handles and meta are merged; status shows both offers', async () => {
  const sock = tempSocket()
  const cache = alloc(4096)
  const sessions = alloc(8192)
  new Uint8Array(cache)[0] = 7
  new Uint8Array(sessions)[0] = 9
  const server = await listening()
  let gen2: Generation | null = null
  try {
    const gen1 = await join(sock.path, { exitOnHandoff: false })
    await gen1.ready()
    gen1.offerRegions(() => ({ cache })).offerRegions(() => ({ sessions }))
    gen1.onHandoff(() => ({ regions: { cache }, meta: { cache: { entries: 1 } } }))
    gen1.onHandoff(() => ({ regions: { sessions }, handles: { http: exportServer(server) }, meta: { http: { port: 1 } } }))
    assert.deepEqual(gen1.status().regions, [{ name: 'cache', bytes: 4096 }, { name: 'sessions', bytes: 8192 }])
    const handedOff = new Promise((resolve) => gen1.once('handedOff', resolve))
    gen2 = await join(sock.path)
    const inh = gen2.inherited
    assert.ok(inh !== null)
    assert.deepEqual(Object.keys(inh.regions).sort(), ['cache', 'sessions'])
    assert.deepEqual(inh.meta, { cache: { entries: 1 }, http: { port: 1 } })
    assert.deepEqual(Object.keys(inh.handles), ['http'])
    const adopted = adoptServer(inh.handles.http)
    await gen2.ready()
    await handedOff
    assert.equal(new Uint8Array(inh.regions.cache)[0], 7)
    assert.equal(new Uint8Array(inh.regions.sessions)[0], 9)
    adopted.close()
    for (const buf of Object.values(inh.regions)) release(buf)
  } finally {
    await gen2?.close()
    server.close()
    sock.cleanup()
  }
})

test('two contributors giving the same name: the handoff rolls back with a clear error', async () => {
  const sock = tempSocket()
  const a = alloc(4096)
  try {
    const gen1 = await join(sock.path, { exitOnHandoff: false })
    await gen1.ready()
    gen1.onHandoff(() => ({ regions: { state: a } }))
    gen1.onHandoff(() => ({ regions: { state: a } }))
    const resumed = new Promise<Error>((resolve) => gen1.once('resumed', resolve))
    await assert.rejects(join(sock.path), { message: /'state' is given by two contributors/ })
    assert.match((await resumed).message, /'state' is given by two contributors/)
    assert.equal(gen1.status().state, 'serving')
    await gen1.close()
  } finally {
    release(a)
    sock.cleanup()
  }
})
