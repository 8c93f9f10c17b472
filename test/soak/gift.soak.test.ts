/**
 * Long runs for `npm run test:soak`: 4 GiB gifts, thousands of random gifts, and peers killed at
 * random moments, with fd and mapping counts checked at the end.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { alloc, release } from '../../src/index.ts'
import { ask, digest, fdCount, fillPattern, memfdMappings, settle, spawnPeer } from '../helpers.ts'

test('4 GiB gifts by move and by cma', async () => {
  const peer = spawnPeer('gift-peer.ts')
  try {
    for (const path of ['move', 'cma'] as const) {
      const size = 4 * 2 ** 30
      const ab = alloc(size)
      const u = new Uint8Array(ab)
      const at = [0, 2 ** 31, 2 ** 32 - 1]
      at.forEach((p, k) => { u[p] = 20 + k })
      const report = ask(peer.ch, { op: 'receive-sample', at })
      assert.equal((await peer.ch.gift(ab, { path })).path, path)
      assert.deepEqual((await report).sample, [20, 21, 22])
    }
  } finally {
    await peer.ch.send({ op: 'exit' }); await peer.exited; peer.ch.close()
  }
})

test('2000 random gifts, one child', async () => {
  const peer = spawnPeer('gift-peer.ts')
  try {
    let s = Number(process.env.PAGEGIFT_SEED ?? 12345)
    const r = (): number => { s = (s * 1103515245 + 12345) % 2 ** 31; return s / 2 ** 31 }
    for (let i = 0; i < 2000; i++) {
      const size = 1 + Math.floor(r() * 300_000)
      const ab = r() < 0.5 ? alloc(size) : new ArrayBuffer(size)
      const v = fillPattern(new Uint8Array(ab), i)
      const want = digest([v])
      const path = ([undefined, 'cma', 'splice', 'copy'] as const)[Math.floor(r() * 4)]
      const report = ask(peer.ch, { op: 'receive' })
      await peer.ch.gift(v, { path })
      assert.equal((await report).digest, want, `gift ${i} seed ${process.env.PAGEGIFT_SEED ?? 12345}`)
    }
  } finally {
    await peer.ch.send({ op: 'exit' }); await peer.exited; peer.ch.close()
  }
})

test('50 peers killed at random moments: every gift fails cleanly or arrives, data not given away by move comes back, nothing leaks', async () => {
  await settle()
  const fds = fdCount()
  const maps = memfdMappings()
  for (let i = 0; i < 50; i++) {
    const peer = spawnPeer('gift-peer.ts')
    await ask(peer.ch, { op: 'pid' })
    const path = (['move', 'cma', 'splice', 'copy'] as const)[i % 4]
    const v = fillPattern(new Uint8Array(alloc(64 << 20)), i)
    const want = digest([v])
    peer.ch.send({ op: 'receive' }).catch(() => {})
    const gift = peer.ch.gift(v, { path })
    setTimeout(() => peer.child.kill('SIGKILL'), Math.floor(Math.random() * 40))
    try {
      await gift
    } catch (err) {
      const e = err as Error & { buffers?: ArrayBuffer[] }
      if (/offered by move and are the reader's/.test(e.message)) {
        // Pages whose move offer was sent are the reader's (docs/safety.md): handing them back could
        // leave two owners of one page, so none come back, and the error says so.
        assert.equal(path, 'move', `peer ${i}: only a move offer gives its pages away`)
        assert.deepEqual(e.buffers, [], `peer ${i}: pages the reader may hold are not handed back`)
      } else {
        assert.equal(digest(e.buffers ?? []), want, `peer ${i}: the data came back`)
      }
      for (const b of e.buffers ?? []) release(b)
    }
    await peer.exited
    peer.ch.close()
  }
  await settle()
  assert.equal(fdCount(), fds)
  assert.equal(memfdMappings(), maps)
})
