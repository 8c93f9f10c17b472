/**
 * The native boundary takes memory, never addresses (issue 9 item 3): spans are bounds-checked in
 * C, a job holds what it reads or writes until it settles, the dead ops are gone, and the numbers
 * TypeScript compares against come from the addon.
 */
import assert from 'node:assert/strict'
import { constants as os } from 'node:os'
import { test } from 'node:test'
import { alloc } from '../src/index.ts'
import { AsyncOp, errno, native } from '../src/native.ts'
import { dropRegion, regionOf, type Region } from '../src/pages.ts'
import { settle } from './helpers.ts'

const SIZE = 64 << 20

test('a span outside its memory, or naming a released mapping, is refused before any job starts', () => {
  const heap = new Uint8Array(100)
  assert.throws(() => native.async(AsyncOp.Read, 0, 0, [heap, 50, 51], null), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => native.async(AsyncOp.Read, 0, 0, [heap, -1, 10], null), { code: 'ERR_OUT_OF_RANGE' })
  const region = regionOf(alloc(4096)) as Region
  assert.throws(() => native.async(AsyncOp.Read, 0, 0, [region.handle, 4096, 1], null), { code: 'ERR_OUT_OF_RANGE' })
  dropRegion(region)
  assert.throws(() => native.async(AsyncOp.Read, 0, 0, [region.handle, 0, 1], null), { code: 'ERR_PAGEGIFT_RELEASED' })
  assert.throws(() => native.addresses([12345, 0, 1] as never), { code: 'ERR_INVALID_ARG_TYPE' })
})

test('a handed-over mapping: its old owners cannot reach it, and it takes exactly one new ArrayBuffer', () => {
  const ab = alloc(4096)
  const region = regionOf(ab) as Region
  new Uint8Array(ab).fill(5)
  native.detach(ab)
  const handle = native.handover(region.handle)
  assert.notEqual(typeof handle, 'number')
  assert.equal(native.handover(region.handle), errno.EBUSY, 'the old handle has nothing left to hand over')
  assert.throws(() => native.async(AsyncOp.Read, 0, 0, [region.handle, 0, 1], null), { code: 'ERR_PAGEGIFT_RELEASED' })
  assert.equal(native.mapFixed(region.handle, 0, 0, 0, 4096) < 0, true)
  const h = handle as typeof region.handle
  assert.equal(native.wrap(h, 4097), errno.EINVAL, 'no buffer longer than the mapping')
  assert.equal(native.wrap(h, 0), errno.EINVAL)
  const again = native.wrap(h, 100) as ArrayBuffer
  assert.equal(again.byteLength, 100)
  assert.ok(new Uint8Array(again).every((x) => x === 5), 'the same pages')
  assert.equal(native.wrap(h, 100), errno.EINVAL, 'one ArrayBuffer per mapping')
  native.detach(again)
  native.unmapAsync(h)
})

test('the dead ops (Pread, Memcpy) and raw-address exports are gone', () => {
  for (const op of [4, 5, 6]) assert.throws(() => native.async(op, 0, 0, [], null), { code: 'ERR_OUT_OF_RANGE' })
  assert.equal((native as unknown as Record<string, unknown>).address, undefined)
  assert.equal((native as unknown as Record<string, unknown>).mappingAddress, undefined)
})

test('errno values and poll flags come from the addon and match the system\'s', () => {
  assert.equal(errno.EAGAIN, -os.errno.EAGAIN)
  assert.equal(errno.EPIPE, -os.errno.EPIPE)
  assert.equal(errno.ECONNREFUSED, -os.errno.ECONNREFUSED)
  assert.deepEqual([native.constants.UV_READABLE, native.constants.UV_WRITABLE, native.constants.UV_DISCONNECT], [1, 2, 4])
})

test('a mapping released while a job writes into it is unmapped only after the job settles', async () => {
  const src = alloc(SIZE)
  new Uint8Array(src).fill(3)
  const dst = regionOf(alloc(SIZE)) as Region
  const remote = new Float64Array(native.addresses([(regionOf(src) as Region).handle, 0, SIZE]))
  const job = native.async(AsyncOp.VmRead, process.pid, 0, [dst.handle, 0, SIZE], remote)
  dropRegion(dst)
  assert.equal(await job, SIZE, 'process_vm_readv never met unmapped memory')
  dropRegion(regionOf(src) as Region)
  await settle()
})

test('a heap buffer transferred away and collected mid-job stays alive until the job settles', async () => {
  const src = alloc(SIZE)
  new Uint8Array(src).fill(4)
  let heap: ArrayBuffer | undefined = new ArrayBuffer(SIZE)
  const remote = new Float64Array(native.addresses([(regionOf(src) as Region).handle, 0, SIZE]))
  const job = native.async(AsyncOp.VmRead, process.pid, 0, [heap, 0, SIZE], remote)
  structuredClone(heap, { transfer: [heap] })
  heap = undefined
  await settle()
  assert.equal(await job, SIZE)
  dropRegion(regionOf(src) as Region)
})
