/** Handoff protocol validation and bulk messages, in one process over a channel pair. */
import assert from 'node:assert/strict'
import { fstatSync, openSync } from 'node:fs'
import { test } from 'node:test'
import { channelPair } from '../src/index.ts'
import { join } from '../src/handoff/index.ts'
import { recvBulk, sendBulk } from '../src/handoff/bulk.ts'
import { defaultEnv } from '../src/handoff/env.ts'
import { parseFirst, parseHelloReply, parseOffer, parseState } from '../src/handoff/protocol.ts'

const state = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  t: 'state',
  v: 1,
  generation: 2,
  from: { pid: 10, version: 'a', generation: 1 },
  stoppedAt: '123',
  regions: [{ name: 'r', byteLength: 4096, mode: 'share', extents: [{ fd: 0, offset: 0, length: 4096 }] }],
  handles: [{ name: 'l', kind: 'server', fd: 1, pending: '', info: { port: 1 } }],
  meta: { any: ['thing'] },
  ...over,
})

test('the first message: hello, status or watch, at our version', () => {
  assert.deepEqual(parseFirst({ t: 'hello', v: 1, pid: 5, version: 'x' }), { t: 'hello', v: 1, pid: 5, version: 'x' })
  assert.equal(parseFirst({ t: 'status', v: 1 }).t, 'status')
  assert.throws(() => parseFirst({ t: 'hello', v: 2, pid: 5, version: '' }), { code: 'ERR_PAGEGIFT_HANDOFF_VERSION' })
  assert.throws(() => parseFirst({ t: 'hello', v: 1, pid: -1, version: '' }), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
  assert.throws(() => parseFirst({ t: 'hello', v: 1, pid: 5, version: 7 }), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
  assert.throws(() => parseFirst({ t: 'state', v: 1 }), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
  assert.throws(() => parseFirst(null), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
  assert.throws(() => parseFirst([]), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
  assert.equal(parseHelloReply({ t: 'refused', v: 1, code: 'X', reason: 'busy' }).t, 'refused')
})

test('STATE: every fd index in range, lengths covered, names unique, types exact', () => {
  assert.equal(parseState(state(), 2).handles[0].kind, 'server')
  assert.throws(() => parseState(state(), 1), /'fd' is not an integer in \[0, 0\]/)
  assert.throws(() => parseState(state({ regions: [{ name: 'r', byteLength: 8192, mode: 'share', extents: [{ fd: 0, offset: 0, length: 4096 }] }] }), 2), /do not cover/)
  assert.throws(() => parseState(state({ handles: [{ name: 'l', kind: 'pipe', fd: 1, pending: '', info: {} }] }), 2), /handle kind/)
  assert.throws(() => parseState(state({ regions: [], handles: [{ name: 'l', kind: 'fd', fd: 0, pending: '', info: {} }, { name: 'l', kind: 'fd', fd: 1, pending: '', info: {} }] }), 2), /duplicate name l/)
  assert.throws(() => parseState(state({ stoppedAt: '-1' }), 2), /stoppedAt/)
  assert.throws(() => parseState(state({ regions: 'lots' }), 2), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL' })
  assert.throws(() => parseState(state({ handles: [{ name: 'l', kind: 'fd', fd: 1, pending: '', info: { a: {} } }] }), 2), /handle info/)
})

test('STATE and OFFER: every fd has one owner (one region may name an fd in several extents)', () => {
  const twoExtents = { name: 'r', byteLength: 8192, mode: 'share', extents: [{ fd: 0, offset: 0, length: 4096 }, { fd: 0, offset: 4096, length: 4096 }] }
  assert.equal(parseState(state({ regions: [twoExtents] }), 2).regions[0].extents.length, 2)
  assert.throws(() => parseState(state({ handles: [{ name: 'l', kind: 'server', fd: 0, pending: '', info: {} }] }), 2), /fd #0 claimed by both region r and handle l/)
  const second = { name: 's', byteLength: 4096, mode: 'share', extents: [{ fd: 0, offset: 0, length: 4096 }] }
  assert.throws(() => parseState(state({ regions: [state().regions as unknown[], second].flat(), handles: [] }), 2), /fd #0 claimed by both region r and region s/)
  const offer = { t: 'offer', v: 3, regions: [state().regions as unknown[], second].flat(), history: [] }
  assert.throws(() => parseOffer(offer, 1, 3), /fd #0 is offered twice/)
  assert.equal(parseOffer({ ...offer, regions: [twoExtents] }, 1, 3).regions.length, 1)
})

test('bulk messages: 200 KB of JSON and 150 fds arrive whole, in order', async () => {
  const [a, b] = channelPair()
  try {
    const body = { t: 'state', v: 1, text: 'x"\\\n'.repeat(50_000), unicode: 'é€😀'.repeat(5000) }
    const fds = Array.from({ length: 150 }, () => openSync('/dev/null', 'r'))
    const sent = sendBulk(a, 'state', body, fds)
    const first = await b.recv()
    const got = await recvBulk(defaultEnv, b, first, 5000)
    await sent
    assert.deepEqual(got.body, body)
    assert.equal(got.fds.length, 150)
    for (const fd of got.fds) { assert.ok(fstatSync(fd).isCharacterDevice()); defaultEnv.closeFd(fd) }
    for (const fd of fds) defaultEnv.closeFd(fd)
  } finally {
    a.close()
    b.close()
  }
})

test('bulk messages: a part out of order is a protocol error and its fds are closed', async () => {
  const [a, b] = channelPair()
  try {
    const fd = openSync('/dev/null', 'r')
    await a.send({ t: 'state', v: 1, part: 0, parts: 3, json: '{' }, [fd])
    await a.send({ t: 'state', v: 1, part: 2, parts: 3, json: '}' })
    const first = await b.recv()
    const receivedFd = first.fds[0]
    await assert.rejects(recvBulk(defaultEnv, b, first, 5000), { code: 'ERR_PAGEGIFT_HANDOFF_PROTOCOL', message: /bad part 1 of 3/ })
    assert.throws(() => fstatSync(receivedFd), { code: 'EBADF' })
    defaultEnv.closeFd(fd)
  } finally {
    a.close()
    b.close()
  }
})

test('join() names its bad arguments', async () => {
  await assert.rejects(join(''), { name: 'TypeError', message: /socketPath/ })
  await assert.rejects(join('/tmp/' + 'x'.repeat(200)), { name: 'RangeError' })
  await assert.rejects(join('/tmp/x.sock', { timeoutMs: -1 }), { name: 'RangeError', message: /opts.timeoutMs/ })
  await assert.rejects(join('/tmp/x.sock', { version: 5 as unknown as string }), { name: 'TypeError', message: /opts.version/ })
})
