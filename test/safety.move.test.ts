/**
 * A page move whose MAP_FIXED fails (issue 9 item 4) is all or nothing: pages already moved into
 * the reader's targets are replaced by the targets' old pages again, and the gift falls back to a
 * copying path. The failure is driven by a broken writer whose second memfd arrives read-only,
 * so that mmap(PROT_WRITE, MAP_SHARED) of it fails with EACCES after the first move succeeded.
 */
import assert from 'node:assert/strict'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { Channel, alloc, pageSize, release } from '../src/index.ts'
import { native } from '../src/native.ts'
import { Memfd, moveInto, regionOf, type Region } from '../src/pages.ts'
import { MAX_MESSAGE, decode, encode } from '../src/wire.ts'

async function next (fd: number): Promise<{ type: number, json: any }> {
  const buf = new Uint8Array(MAX_MESSAGE + 1)
  const out = new Int32Array(66)
  const deadline = Date.now() + 10_000
  for (;;) {
    const n = native.recvmsg(fd, buf, out)
    if (n > 0) return decode(buf, n, out[0])
    if (Date.now() > deadline) throw new Error('no message in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

const mapsOf = (name: string): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`/memfd:${name}`)).length

test('a failed MAP_FIXED undoes the moves already made and falls back to copy', { timeout: 30_000 }, async () => {
  const [mine, theirs] = native.seqpacketPair() as number[]
  const ch = new Channel(mine)
  const good = native.memfdCreate('pagegift-move-good', pageSize, true)
  const other = native.memfdCreate('pagegift-move-ro', pageSize, true)
  const readOnly = openSync(`/proc/self/fd/${other}`, 'r')
  const targets = [alloc(pageSize), alloc(pageSize)]
  for (const t of targets) new Uint8Array(t).fill(1)
  const got = ch.receive({ into: targets.map((t) => new Uint8Array(t)) })
  const offer = { id: 1, lengths: [pageSize, pageSize], move: [[[0, 0, pageSize]], [[1, 0, pageSize]]] }
  assert.ok(native.sendmsg(theirs, [encode(1, offer, 0, 2)], [good, readOnly]) >= 0)
  for (const path of ['cma', 'splice']) {
    assert.deepEqual((await next(theirs)).json, { id: 1, path })
    native.sendmsg(theirs, [encode(9, { id: 1, reason: `no ${path}` }, 0, 0)], [])
  }
  assert.deepEqual((await next(theirs)).json, { id: 1, path: 'copy' })
  const bytes = new Uint8Array(2 * pageSize).fill(5)
  native.sendmsg(theirs, [encode(5, { id: 1 }, bytes.byteLength, 0), bytes], [])
  const g = await got
  assert.equal(g.path, 'copy')
  assert.match(g.reason ?? '', /move: mmap EACCES/)
  for (const t of targets) assert.ok(new Uint8Array(t).every((x) => x === 5), 'the copy landed in the reader\'s own pages')
  assert.equal(mapsOf('pagegift-move-good'), 0, 'the reader maps none of the writer\'s pages')
  for (const t of targets) release(t)
  for (const fd of [good, other, theirs]) native.close(fd)
  closeSync(readOnly)
  ch.close()
})

test('when the old pages cannot be mapped back either, the target is detached rather than left over a hole', { timeout: 30_000 }, () => {
  const target = alloc(2 * pageSize)
  const region = regionOf(target) as Region
  const original = region.pages.extents[0]
  // The target's old pages become unmappable (an fd that is not open), and the new ones are read-only.
  region.pages.extents = [{ memfd: new Memfd(-1), offset: 0, length: 2 * pageSize }]
  const memfd = native.memfdCreate('pagegift-move-ro2', pageSize, true)
  const readOnly = openSync(`/proc/self/fd/${memfd}`, 'r')
  assert.throws(() => moveInto([{ region, at: pageSize, extent: { memfd: new Memfd(readOnly), offset: 0, length: pageSize } }]), { code: 'EACCES', syscall: 'mmap' })
  assert.equal(target.byteLength, 0, 'the target is detached: no view reaches the range')
  assert.ok(region.released)
  original.memfd.unref()
  native.close(memfd)
  closeSync(readOnly)
})
