/** Hostile or broken peers, and peers that die mid-gift: clear errors, no crash, no leaked fds or mappings. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Channel, alloc, pageSize, release } from '../src/index.ts'
import { native } from '../src/native.ts'
import { HEADER_BYTES, MAGIC, MAX_MESSAGE, VERSION } from '../src/wire.ts'
import { ask, digest, fdCount, fillPattern, memfdMappings, settle, settledFdCount, spawnPeer } from './helpers.ts'

function header (type: number, json: string, dataLength = 0, nfds = 0, over: { magic?: number, version?: number } = {}): Uint8Array {
  const body = Buffer.from(json)
  const out = new Uint8Array(HEADER_BYTES + body.length + dataLength)
  const v = new DataView(out.buffer)
  v.setUint32(0, over.magic ?? MAGIC, true)
  v.setUint16(4, over.version ?? VERSION, true)
  v.setUint16(6, type, true)
  v.setUint32(8, body.length, true)
  v.setUint32(12, dataLength, true)
  v.setUint16(16, nfds, true)
  out.set(body, HEADER_BYTES)
  return out
}

/** A Channel on one end of a real socketpair; the test writes raw packets into the other end. */
async function hostile (packet: Uint8Array, fds: number[] = []): Promise<Error> {
  const pair = native.seqpacketPair() as number[]
  const ch = new Channel(pair[0])
  const closed = new Promise<Error>((resolve) => ch.once('close', resolve))
  const pending = ch.receive()
  pending.catch(() => {})
  assert.ok(native.sendmsg(pair[1], [packet], fds) >= 0)
  const err = await closed
  await assert.rejects(pending, { code: (err as NodeJS.ErrnoException).code })
  native.close(pair[1])
  return err
}

/** `packet` with the byte at `at` replaced. */
function withByte (packet: Uint8Array, at: number, byte: number): Uint8Array {
  packet[at] = byte
  return packet
}

test('a U+FFFD sent as valid UTF-8 arrives as it was sent', async () => {
  const pair = native.seqpacketPair() as number[]
  const ch = new Channel(pair[0])
  try {
    assert.ok(native.sendmsg(pair[1], [header(7, '{"msg":"a\uFFFDb é"}')], []) >= 0)
    assert.equal((await ch.recv({ timeoutMs: 10_000 })).msg, 'a\uFFFDb é')
  } finally {
    ch.close()
    native.close(pair[1])
  }
})

describe('malformed messages close the channel with a clear error', () => {
  const cases: Array<[string, () => Uint8Array, string, number?]> = [
    ['shorter than a header', () => new Uint8Array(7), 'ERR_PAGEGIFT_PROTOCOL'],
    ['bad magic', () => header(1, '{}', 0, 0, { magic: 0xdeadbeef }), 'ERR_PAGEGIFT_PROTOCOL'],
    ['unknown protocol version', () => header(1, '{}', 0, 0, { version: 99 }), 'ERR_PAGEGIFT_VERSION'],
    ['unknown message type', () => header(77, '{}'), 'ERR_PAGEGIFT_PROTOCOL'],
    ['truncated (lengths promise more than arrived)', () => header(1, '{"id":1}', 4096).subarray(0, 40), 'ERR_PAGEGIFT_PROTOCOL'],
    ['oversized packet', () => new Uint8Array(MAX_MESSAGE + 100), 'ERR_PAGEGIFT_PROTOCOL'],
    ['JSON that does not parse', () => header(1, '{"id":'), 'ERR_PAGEGIFT_PROTOCOL'],
    // "é" in Latin-1 (0xe9) is not UTF-8: refused, though a lax decoder would turn it into U+FFFD.
    ['JSON part that is not UTF-8', () => withByte(header(7, '{"msg":"cafX"}'), HEADER_BYTES + 11, 0xe9), 'ERR_PAGEGIFT_PROTOCOL'],
    ['offer with absurd lengths', () => header(1, '{"id":1,"lengths":[-5]}'), 'ERR_PAGEGIFT_PROTOCOL'],
    ['offer whose extents point past its fds', () => header(1, `{"id":1,"lengths":[${pageSize}],"move":[[[3,0,${pageSize}]]]}`), 'ERR_PAGEGIFT_PROTOCOL'],
  ]
  for (const [name, make, code] of cases) {
    test(name, async () => {
      const before = await settledFdCount()
      const err = await hostile(make())
      assert.equal((err as NodeJS.ErrnoException).code, code)
      assert.equal(fdCount(), before)
    })
  }
  const fdCases: Array<[string, Uint8Array, number]> = [
    ['fds sent with a message that may not carry them are closed', header(7, '{"msg":1}', 0, 1), 3],
    ['fds sent with a control message whose JSON is not an object are closed', header(7, '[1,2]', 0, 2), 2],
    ['fds sent with a reply whose id is malformed are closed', header(4, '{"id":"x"}', 0, 1), 1],
    ['more fds than the limit: the message is refused, every fd is closed', header(1, `{"id":1,"lengths":[${pageSize}]}`, 0, 100), 100],
  ]
  for (const [name, packet, count] of fdCases) {
    test(name, async () => {
      const before = await settledFdCount()
      const extra = Array.from({ length: count }, () => native.dup(0))
      const err = await hostile(packet, extra)
      assert.equal((err as NodeJS.ErrnoException).code, 'ERR_PAGEGIFT_PROTOCOL')
      for (const fd of extra) native.close(fd)
      assert.equal(fdCount(), before)
    })
  }
  test('an offer of unsealed pages with a forced move is refused, and the pages never mapped', async () => {
    const before = memfdMappings()
    const fd = native.memfdCreate('evil', pageSize, false)
    const pair = native.seqpacketPair() as number[]
    const ch = new Channel(pair[0])
    native.sendmsg(pair[1], [header(1, `{"id":1,"lengths":[${pageSize}],"forced":"move","move":[[[0,0,${pageSize}]]]}`, 0, 1)], [fd])
    await assert.rejects(ch.receive(), { code: 'ERR_PAGEGIFT_PATH_UNAVAILABLE', message: /F_SEAL_SHRINK/ })
    assert.equal(memfdMappings(), before)
    native.close(fd)
    native.close(pair[1])
    ch.close()
  })
})

describe('a peer killed mid-gift', () => {
  test('writer side: gift() rejects, and the data comes back on the error', async () => {
    await settle()
    const fds = fdCount()
    const maps = memfdMappings()
    const peer = spawnPeer('gift-peer.ts')
    await ask(peer.ch, { op: 'pid' })
    const big = fillPattern(new Uint8Array(alloc(256 << 20)), 1)
    const want = digest([big])
    peer.ch.send({ op: 'receive', into: { kind: 'heap', size: 256 << 20, offset: 0 } }).catch(() => {})
    const gift = peer.ch.gift(big, { path: 'copy' })
    setTimeout(() => peer.child.kill('SIGKILL'), 50)
    const err = await gift.then(() => assert.fail('the gift cannot have been delivered'), (e: Error & { code: string, buffers?: ArrayBuffer[] }) => e)
    assert.equal(err.code, 'ERR_PAGEGIFT_PEER_CLOSED')
    assert.equal(err.buffers?.length, 1)
    assert.equal(digest(err.buffers as ArrayBuffer[]), want, 'nothing is lost')
    for (const b of err.buffers as ArrayBuffer[]) release(b)
    await peer.exited
    await settle()
    assert.equal(fdCount(), fds)
    assert.equal(memfdMappings(), maps)
  })
  for (const path of ['copy', 'splice'] as const) {
    test(`reader side (${path}): receive() rejects with a clear error, nothing leaks`, async () => {
      await settle()
      const fds = fdCount()
      const maps = memfdMappings()
      const peer = spawnPeer('gift-peer.ts')
      await ask(peer.ch, { op: 'pid' })
      peer.ch.send({ op: 'gift', kind: 'heap', sizes: [512 << 20], seed: 2, path }).catch(() => {})
      const into = new Uint8Array(512 << 20)
      const got = peer.ch.receive({ into })
      setTimeout(() => peer.child.kill('SIGKILL'), 300)
      await assert.rejects(got, (e: NodeJS.ErrnoException) => ['ERR_PAGEGIFT_PEER_CLOSED', 'EPIPE'].includes(e.code as string))
      await peer.exited
      peer.ch.close()
      await settle()
      assert.equal(fdCount(), fds)
      assert.equal(memfdMappings(), maps)
    })
  }
  test('a move gift whose writer died before it was received is still the reader\'s', async () => {
    const peer = spawnPeer('gift-peer.ts')
    const reply = await ask(peer.ch, { op: 'gift-then-die', kind: 'alloc', sizes: [20 * pageSize], seed: 3 }).catch(() => undefined)
    assert.equal(reply, undefined)
    await peer.exited
    const g = await peer.ch.receive()
    assert.equal(g.path, 'move')
    const expect = fillPattern(new Uint8Array(20 * pageSize), 3)
    assert.equal(digest(g.buffers), digest([expect]))
    release(g.buffers[0])
    peer.ch.close()
  })
})
