/**
 * Connections offered before the pause (protocol version 3, `gen.offerSockets`): the successor wraps
 * them while the predecessor serves, and STATE names them as `offered` instead of sending their fds.
 * Both sides run in this process over a channel pair, on real TCP connections, so the wire can be
 * checked; the hostile cases (bad OFFER and STATE fields, a fake predecessor) are here too.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { openSync } from 'node:fs'
import { test } from 'node:test'
import { channelPair } from '../src/index.ts'
import { adoptSocket, exportSocket } from '../src/handoff/handles.ts'
import { Contributors } from '../src/handoff/contributors.ts'
import { defaultEnv } from '../src/handoff/env.ts'
import { handOff, type HandoffJob } from '../src/handoff/predecessor.ts'
import { parseFirst, parseOffer, parseState, PROTOCOL_VERSION } from '../src/handoff/protocol.ts'
import { inherit, takeOver } from '../src/handoff/successor.ts'
import { settledFdCount, withTimeout } from './helpers.ts'
import { sleep } from './fixtures/handoff-harness.ts'

const noPoint = async (): Promise<void> => {}

/** A TCP server on 127.0.0.1 and `n` connections to it: [client, accepted] pairs. */
async function pairs (n: number): Promise<{ server: net.Server, pairs: Array<[net.Socket, net.Socket]> }> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const out: Array<[net.Socket, net.Socket]> = []
  for (let i = 0; i < n; i++) {
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
    out.push([client, await withTimeout(accepted, 5000, 'accept')])
  }
  return { server, pairs: out }
}

const once = async (s: net.Socket, what: string): Promise<string> => await withTimeout(new Promise<string>((resolve) => s.once('data', (d) => resolve(String(d)))), 5000, what)

function job (contributors: Contributors): HandoffJob {
  return {
    hello: { t: 'hello', v: 1, max: PROTOCOL_VERSION, pid: process.pid, version: 'test' },
    v: PROTOCOL_VERSION,
    generation: 1,
    version: 'test',
    timeoutMs: 5000,
    pauseBudgetMs: 5000,
    layouts: {},
    history: [],
    offer: () => contributors.offer(),
    offerSockets: () => contributors.offerSockets(),
    quiesce: async (successor) => await contributors.quiesce(successor),
    fenced: () => false,
    event: () => {},
    point: noPoint,
  }
}

test('offered connections travel without fds; one closed after the offer is closed, one renamed travels as usual, and nothing leaks', async () => {
  const before = await settledFdCount()
  const { server, pairs: [[ca, a], [cb, b], [cc, c], [cd, d]] } = await pairs(4)
  const [pa, pb] = channelPair()
  const adopted: net.Socket[] = []
  try {
    const contributors = new Contributors()
    contributors.addSocketOfferer(() => ({ a, b, c }))
    contributors.addQuiescer(() => {
      // After the offer: the app closes b, and `c` is now another connection (d).
      b.destroy()
      return { handles: { a: exportSocket(a), c: exportSocket(d) } }
    })
    const inheriting = inherit(defaultEnv, pb, { version: 'test', key: null, layouts: {} }, 5000, noPoint)
    parseFirst((await pa.recv({ timeoutMs: 5000 })).msg)
    const handing = handOff(defaultEnv, pa, job(contributors))
    const inh = await inheriting
    const wire = Object.fromEntries(inh.state.handles.map((h) => [h.name, h]))
    assert.equal(wire.a.offered, true)
    assert.equal(wire.a.fd, -1)
    assert.equal(wire.c.offered, undefined, 'a name whose socket changed travels with its fd')
    assert.ok(wire.c.fd >= 0)
    // The successor dropped its copy of b: with the predecessor's closed too, b's client sees the end.
    await withTimeout(new Promise((resolve) => cb.once('close', resolve)), 5000, "b's client sees the close")
    const sa = adoptSocket(inh.inherited.handles.a).socket
    const sc = adoptSocket(inh.inherited.handles.c).socket
    adopted.push(sa, sc)
    const gotA = once(sa, 'a after commit')
    const gotC = once(sc, 'c after commit')
    await takeOver(defaultEnv, inh, 5000, { generation: 2, version: 'test' })
    const result = await handing
    assert.equal(result.outcome, 'committed')
    if (result.outcome === 'committed') await result.drain()
    ca.write('to a')
    cd.write('to d')
    assert.equal(await gotA, 'to a')
    assert.equal(await gotC, 'to d', "the successor's `c` is d's connection")
    const back = once(ca, 'reply on a')
    sa.write('from successor')
    assert.equal(await back, 'from successor')
    // c's connection stays with the predecessor, which never exported it.
    const onC = once(cc, 'c still served')
    c.write('still here')
    assert.equal(await onC, 'still here')
  } finally {
    for (const s of [...adopted, ca, cb, cc, cd, a, b, c, d]) s.destroy()
    pa.close()
    pb.close()
    await new Promise((resolve) => server.close(resolve))
  }
  assert.equal(await settledFdCount(), before, 'fds leaked')
})

test('OFFER and STATE: offered sockets and offered handles are checked (version, fd range and reuse, names, kinds)', () => {
  const offer = (sockets: unknown, over: Record<string, unknown> = {}): Record<string, unknown> => ({ t: 'offer', v: 3, regions: [{ name: 'r', byteLength: 4096, mode: 'share', extents: [{ fd: 0, offset: 0, length: 4096 }] }], history: [], sockets, ...over })
  assert.deepEqual(parseOffer(offer([{ name: 's', fd: 1 }]), 2, 3).sockets, [{ name: 's', fd: 1 }])
  assert.deepEqual(parseOffer(offer(undefined), 1, 3).sockets, [])
  assert.throws(() => parseOffer(offer([{ name: 's', fd: 1 }], { v: 2 }), 2, 2), /need protocol version 3/)
  assert.throws(() => parseOffer(offer([{ name: 's', fd: 2 }]), 2, 3), /'fd' is not an integer/)
  assert.throws(() => parseOffer(offer([{ name: 's', fd: 0 }]), 2, 3), /fd #0 is offered twice/)
  assert.throws(() => parseOffer(offer([{ name: 's', fd: 1 }, { name: 't', fd: 1 }]), 2, 3), /fd #1 is offered twice/)
  assert.throws(() => parseOffer(offer([{ name: 's', fd: 1 }, { name: 's', fd: 2 }]), 3, 3), /duplicate offered socket/)
  assert.throws(() => parseOffer(offer([{ name: 7, fd: 1 }]), 2, 3), /'name'/)
  assert.throws(() => parseOffer(offer('all of them'), 2, 3), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
  assert.throws(() => parseOffer(offer(Array.from({ length: 5000 }, (_, i) => ({ name: `s${i}`, fd: 1 }))), 2, 3), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
  const state = (handle: Record<string, unknown>, v = 3): Record<string, unknown> => ({ t: 'state', v, generation: 2, from: { pid: 10, version: 'a', generation: 1 }, stoppedAt: '1', regions: [], handles: [{ name: 'h', pending: '', info: {}, ...handle }], meta: null })
  assert.equal(parseState(state({ kind: 'socket', offered: true }), 0, 3).handles[0].fd, -1)
  assert.throws(() => parseState(state({ kind: 'socket', offered: true }, 2), 0, 2), /needs protocol version 3/)
  assert.throws(() => parseState(state({ kind: 'server', offered: true }), 0, 3), /only a socket can be offered/)
  assert.throws(() => parseState(state({ kind: 'socket', offered: true, fd: 0 }), 1, 3), /has no fd/)
  assert.throws(() => parseState(state({ kind: 'socket', offered: 'yes' }), 1, 3), /'offered' is not a boolean/)
  assert.throws(() => parseState(state({ kind: 'socket' }), 0, 3), /'fd'/)
})

/** A fake predecessor that offers `sockets` (with `fds`), waits for PREPARED, then sends `handles` in STATE. */
async function fakePredecessor (pa: ReturnType<typeof channelPair>[0], sockets: unknown[], fds: number[], handles: unknown[]): Promise<void> {
  await pa.recv({ timeoutMs: 5000 })
  const offer = { t: 'offer', v: 3, regions: [], history: [], sockets }
  await pa.send({ t: 'offer', v: 3, part: 0, parts: 1, json: JSON.stringify(offer) }, fds)
  const prepared = await pa.recv({ timeoutMs: 5000 })
  assert.equal((prepared.msg as { t: string }).t, 'prepared')
  const state = { t: 'state', v: 3, generation: 2, from: { pid: 1, version: 'x', generation: 1 }, stoppedAt: '1', regions: [], handles, meta: null }
  await pa.send({ t: 'state', v: 3, part: 0, parts: 1, json: JSON.stringify(state) })
}

test('a hostile predecessor: an offered fd that is no socket, or a STATE that names a socket it never offered, fails the successor with a protocol error, and every fd goes', async () => {
  const { server, pairs: [[client, accepted]] } = await pairs(1)
  try {
    const before = await settledFdCount()
    const cases: Array<[string, () => [unknown[], number[], unknown[]], RegExp]> = [
      ['not a socket', () => [[{ name: 's', fd: 0 }], [openSync('/dev/null', 'r')], []], /offered socket 's' is not a stream socket/],
      ['never offered', () => [[{ name: 's', fd: 0 }], [defaultEnv.dup((accepted as unknown as { _handle: { fd: number } })._handle.fd)], [{ name: 'other', kind: 'socket', offered: true, pending: '', info: {} }]], /'other' is said to be offered/],
    ]
    for (const [label, make, error] of cases) {
      const [pa, pb] = channelPair()
      const [sockets, fds, handles] = make()
      const faking = fakePredecessor(pa, sockets, fds, handles).catch(() => {})
      await assert.rejects(inherit(defaultEnv, pb, { version: 'test', key: null, layouts: {} }, 3000, noPoint), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_PAGEGIFT_HANDOFF_PROTOCOL', label)
        assert.match(err.message, error, label)
        return true
      })
      await faking
      for (const fd of fds) defaultEnv.closeFd(fd)
      pa.close()
      pb.close()
      assert.equal(await settledFdCount(), before, `${label}: fds leaked`)
    }
    // The connection whose dup was offered is untouched.
    const got = once(accepted, 'still connected')
    client.write('ok')
    assert.equal(await got, 'ok')
  } finally {
    client.destroy()
    accepted.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
})

test('the successor rehearses just before PREPARED; a rehearsal that fails or hangs does not hold the handoff', async () => {
  const before = await settledFdCount()
  const cases: Array<[string, (order: string[]) => Promise<void>, number, number]> = [
    // Each says 'warm' 50 ms in: had PREPARED gone out first, the predecessor would have it by then.
    ['quick', async (order) => { await sleep(50); order.push('warm') }, 50, 900],
    ['fails', async (order) => { await sleep(50); order.push('warm'); throw new Error('boom') }, 50, 900],
    ['hangs', async (order) => { await sleep(50); order.push('warm'); await new Promise(() => {}) }, 900, 2500],
  ]
  for (const [label, warm, least, most] of cases) {
    const [pa, pb] = channelPair()
    const order: string[] = []
    // What the fake predecessor receives, in order, beside the rehearsal's start.
    const recv = pa.recv.bind(pa)
    pa.recv = async (o) => { const m = await recv(o); order.push((m.msg as { t: string }).t); return m }
    const faking = fakePredecessor(pa, [], [], [])
    const started = Date.now()
    await inherit(defaultEnv, pb, { version: 'test', key: null, layouts: {}, warm: async () => await warm(order) }, 5000, noPoint)
    const took = Date.now() - started
    await faking
    assert.deepEqual(order, ['hello', 'warm', 'prepared'], label)
    assert.ok(took >= least && took < most, `${label}: inherit took ${took} ms`)
    pa.close()
    pb.close()
  }
  assert.equal(await settledFdCount(), before, 'fds leaked')
})
