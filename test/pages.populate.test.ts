/** populate(): a fresh mapping of written pages gets its page tables ahead of use; holes stay holes. */
import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { test } from 'node:test'
import { alloc, pageSize, release } from '../src/index.ts'
import { defaultEnv } from '../src/handoff/env.ts'
import { native } from '../src/native.ts'
import { populate } from '../src/pages.ts'
import { fdCount, memfdMappings, settle } from './helpers.ts'

const BYTES = 64 << 20

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

test('a fresh mapping of written pages: reading it faults without populate(), not after it', async () => {
  await settle()
  const fds = fdCount()
  const maps = memfdMappings()
  const buf = alloc(BYTES)
  new Uint8Array(buf).fill(7)
  const cold = remap(buf)
  const warm = remap(buf)
  // Fault-around maps up to 16 pages per fault: a cold read of 16384 pages takes about a thousand.
  assert.ok(faultsReading(cold) > 200, 'a fresh mapping takes faults on first read')
  assert.equal(await populate(warm), BYTES)
  assert.ok(faultsReading(warm) < 20, 'a populated mapping takes (almost) none')
  assert.equal(new Uint8Array(warm)[BYTES - 1], 7)
  for (const b of [buf, cold, warm]) release(b)
  await settle() // unmapped on the threadpool
  assert.equal(fdCount(), fds)
  assert.equal(memfdMappings(), maps)
})

test('holes stay holes: only the pages that hold data are populated, none is allocated', async () => {
  const buf = alloc(BYTES)
  new Uint8Array(buf, 0, BYTES / 4).fill(1)
  const held = allocatedBytes(buf)
  const again = remap(buf)
  assert.equal(await populate(again), BYTES / 4)
  assert.equal(allocatedBytes(buf), held)
  release(again)
  release(buf)
})

test('memory that is not giftable, or was released, populates nothing and does not throw', async () => {
  assert.equal(await populate(new ArrayBuffer(1 << 20)), 0)
  const buf = alloc(pageSize * 4)
  release(buf)
  assert.equal(await populate(buf), 0)
  // Released while the job runs: the mapping stays until the job ends, then goes.
  await settle()
  const maps = memfdMappings()
  const big = alloc(BYTES)
  new Uint8Array(big).fill(3)
  const pending = populate(big)
  release(big)
  assert.ok(await pending >= 0)
  await settle()
  assert.equal(memfdMappings(), maps)
})
