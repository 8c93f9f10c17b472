/** populate(): a fresh mapping of written pages gets its page tables ahead of use; holes stay holes. */
import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { release as kernelRelease } from 'node:os'
import { test } from 'node:test'
import { alloc, pageSize, release } from '../src/index.ts'
import { defaultEnv } from '../src/handoff/env.ts'
import { join, type Generation } from '../src/handoff/index.ts'
import { native } from '../src/native.ts'
import { populate } from '../src/pages.ts'
import { tempSocket } from './fixtures/handoff-harness.ts'
import { fdCount, memfdMappings, settle, settledFdCount, withTimeout } from './helpers.ts'

const BYTES = 64 << 20
/** MADV_POPULATE_READ came with Linux 5.14: before it, populate() fills nothing and says 0. */
const supported = ((): boolean => { const [major, minor] = kernelRelease().split('.').map(Number); return major > 5 || (major === 5 && minor >= 14) })()

/** A second mapping of `buf`'s pages, as a successor maps them: the same pages, no page tables yet. */
function remap (buf: ArrayBuffer): ArrayBuffer {
  const shared = defaultEnv.share(buf)
  assert.ok(shared !== null)
  return defaultEnv.map(shared.fds.map((fd) => native.dup(fd)), shared.extents, buf.byteLength)
}

/** Minor page faults taken while reading one byte of every page of `buf`. */
function faultsReading (buf: ArrayBuffer): number {
  const u = new Uint8Array(buf)
  const before = process.resourceUsage().minorPageFault
  let sum = 0
  for (let off = 0; off < u.length; off += pageSize) sum += u[off]
  assert.ok(sum >= 0)
  return process.resourceUsage().minorPageFault - before
}

/** Bytes the memfd behind `buf` holds in memory (its holes hold none). */
function allocatedBytes (buf: ArrayBuffer): number {
  const shared = defaultEnv.share(buf)
  assert.ok(shared !== null)
  return statSync(`/proc/self/fd/${shared.fds[0]}`).blocks * 512
}

/** Runs `fn`, then checks that it left no fd and no memfd mapping behind. */
async function noLeaks (fn: () => Promise<void>): Promise<void> {
  const fds = await settledFdCount()
  const maps = memfdMappings()
  await fn()
  await settle() // releases unmap on the threadpool
  assert.equal(fdCount(), fds)
  assert.equal(memfdMappings(), maps)
}

test('a fresh mapping of written pages: reading it faults without populate(), not after it', async () => {
  await noLeaks(async () => {
    const buf = alloc(BYTES)
    new Uint8Array(buf).fill(7)
    const cold = remap(buf)
    const warm = remap(buf)
    // Fault-around maps up to 16 pages per fault (a huge page per fault with shmem THP): never none.
    const coldFaults = faultsReading(cold)
    assert.ok(coldFaults > 0, 'a fresh mapping takes faults on first read')
    assert.equal(await populate(warm), supported ? BYTES : 0)
    if (supported) assert.ok(faultsReading(warm) <= coldFaults / 10, 'a populated mapping takes (almost) none')
    assert.equal(new Uint8Array(warm)[BYTES - 1], 7)
    for (const b of [buf, cold, warm]) release(b)
  })
})

test('holes stay holes: only the pages that hold data are populated, none is allocated', async () => {
  await noLeaks(async () => {
    const buf = alloc(BYTES)
    new Uint8Array(buf, 0, BYTES / 4).fill(1)
    const held = allocatedBytes(buf)
    const again = remap(buf)
    assert.equal(await populate(again), supported ? BYTES / 4 : 0)
    assert.equal(allocatedBytes(buf), held)
    release(again)
    release(buf)
  })
})

test('64 MiB jobs, one at a time: stop() and a release end the fill between two jobs', { skip: !supported && 'needs MADV_POPULATE_READ (Linux 5.14)' }, async () => {
  await noLeaks(async () => {
    const buf = alloc(3 * BYTES)
    new Uint8Array(buf).fill(2)
    const first = remap(buf)
    let asked = 0
    assert.equal(await populate(first, () => asked++ >= 2), 2 * BYTES, 'stopped before the third job')
    release(first)
    // Released while the first job runs: that job finishes on the pinned mapping, no other starts.
    const again = remap(buf)
    const pending = populate(again)
    release(again)
    assert.equal(await pending, BYTES)
    release(buf)
  })
})

test('memory that is not giftable, or was released, populates nothing and does not throw', async () => {
  assert.equal(await populate(new ArrayBuffer(1 << 20)), 0)
  const buf = alloc(pageSize * 4)
  release(buf)
  assert.equal(await populate(buf), 0)
})

test('a successor whose page-table fill never finishes still says PREPARED within its bound, and takes over', { timeout: 30_000 }, async () => {
  const sock = tempSocket()
  const region = alloc(1 << 20)
  new Uint8Array(region)[0] = 5
  let gen1: Generation | null = null
  let gen2: Generation | null = null
  let fills = 0
  try {
    gen1 = await join(sock.path, { exitOnHandoff: false })
    await gen1.ready()
    gen1.offerRegions(() => ({ region })).onHandoff(() => ({ regions: { region } }))
    const handedOff = new Promise((resolve) => gen1?.once('handedOff', resolve))
    const started = Date.now()
    const never = async (): Promise<void> => { fills++; await new Promise(() => {}) }
    gen2 = await withTimeout(join(sock.path, { env: { populate: never } }), 10_000, 'the successor to join')
    assert.ok(Date.now() - started < 5000, 'PREPARED did not wait for the fill')
    assert.equal(fills, 1, 'the offered region was queued for the fill before the pause')
    await withTimeout(gen2.ready(), 10_000, 'the successor to take over')
    await withTimeout(handedOff, 10_000, 'handedOff')
    assert.equal(new Uint8Array(gen2.inherited?.regions.region as ArrayBuffer)[0], 5)
    release(gen2.inherited?.regions.region as ArrayBuffer)
  } finally {
    await gen2?.close()
    await gen1?.close()
    sock.cleanup()
  }
})
