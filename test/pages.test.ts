/** Giftable memory in one process: alloc, seals, release, fdOf, argument errors and leak checks. */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { closeSync, fstatSync } from 'node:fs'
import { test } from 'node:test'
import { alloc, fdOf, isGiftable, pageSize, release } from '../src/index.ts'
import { native, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK } from '../src/native.ts'
import { fdCount, memfdMappings, settle } from './helpers.ts'

test('pageSize is the system page size', () => {
  assert.ok(pageSize === 4096 || pageSize === 16384 || pageSize === 65536)
})

test('alloc returns zeroed, writable, giftable memory of the asked length', () => {
  const ab = alloc(10_000)
  assert.equal(ab.byteLength, 10_000)
  const u = new Uint8Array(ab)
  assert.equal(u.reduce((a, b) => a + b, 0), 0)
  u[9_999] = 42
  assert.equal(u[9_999], 42)
  assert.ok(isGiftable(ab))
  assert.ok(isGiftable(u.subarray(5)))
  assert.ok(!isGiftable(new ArrayBuffer(8)))
  assert.ok(!isGiftable(Buffer.alloc(8)))
  release(ab)
})

test('the memfd is sealed against shrinking and growing, and sized to whole pages', () => {
  const ab = alloc(pageSize + 1, { name: 'sealed-test' })
  const fd = fdOf(ab)
  try {
    const seals = native.getSeals(fd)
    assert.equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
    assert.equal(fstatSync(fd).size, 2 * pageSize)
  } finally {
    closeSync(fd)
    release(ab)
  }
})

test('fdOf shares the pages: writes through the fd show in the buffer', async () => {
  const ab = alloc(pageSize)
  const fd = fdOf(ab)
  const { writeSync } = await import('node:fs')
  writeSync(fd, Buffer.from('hi'), 0, 2, 10)
  assert.equal(Buffer.from(ab, 10, 2).toString(), 'hi')
  closeSync(fd)
  release(ab)
})

test('release detaches: every view reads as length 0, and a second release is an error', () => {
  const ab = alloc(pageSize)
  const view = new Uint32Array(ab)
  release(ab)
  assert.equal(ab.byteLength, 0)
  assert.equal(view.length, 0)
  assert.ok(!isGiftable(ab))
  assert.throws(() => release(ab), { code: 'ERR_PAGEGIFT_RELEASED' })
})

test('wrong arguments get TypeError or RangeError naming the argument', () => {
  assert.throws(() => alloc(0), { name: 'RangeError', message: /"byteLength"/ })
  assert.throws(() => alloc(-1), { name: 'RangeError' })
  assert.throws(() => alloc(1.5), { name: 'TypeError', message: /"byteLength"/ })
  assert.throws(() => alloc('4096' as unknown as number), { name: 'TypeError' })
  assert.throws(() => alloc(2 ** 50), { name: 'RangeError' })
  assert.throws(() => alloc(10, { name: 5 as unknown as string }), { name: 'TypeError', message: /"opts.name"/ })
  assert.throws(() => release(new ArrayBuffer(4)), { code: 'ERR_PAGEGIFT_NOT_GIFTABLE' })
  assert.throws(() => release('x' as unknown as ArrayBuffer), { name: 'TypeError', message: /"buf"/ })
  assert.throws(() => fdOf(new ArrayBuffer(4)), { code: 'ERR_PAGEGIFT_NOT_GIFTABLE' })
})

test('running out of memory: alloc fails with ENOMEM as a system error, and the process lives on', () => {
  // A child under a 32 GiB address-space limit asks for 64 GiB (V8 and WebAssembly reserve much address space of their own): mmap must fail cleanly.
  const script = `import { alloc } from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).pathname)}
try { alloc(64 * 2 ** 30); console.log('allocated') } catch (e) { console.log(JSON.stringify({ code: e.code, errno: e.errno, syscall: e.syscall })) }`
  const out = execFileSync('sh', ['-c', `ulimit -v 33554432; exec "${process.execPath}" --import tsx --input-type=module -e "$0"`, script], { encoding: 'utf8' })
  assert.deepEqual(JSON.parse(out), { code: 'ENOMEM', errno: -12, syscall: 'mmap' })
})

test('no fds or mappings leak across many allocs, releases and collections', async () => {
  await settle()
  const fds = fdCount()
  const maps = memfdMappings()
  // In a function of its own, so that no stack slot keeps the last buffer alive.
  const churn = (): void => {
    for (let i = 0; i < 200; i++) {
      const ab = alloc(pageSize * (1 + (i % 5)))
      new Uint8Array(ab)[0] = i
      if (i % 2 === 0) release(ab)
    }
  }
  churn()
  churn()
  await settle()
  assert.equal(fdCount(), fds)
  assert.equal(memfdMappings(), maps)
})

test('a 4 GiB buffer can be allocated and touched at both ends', () => {
  const ab = alloc(4 * 2 ** 30)
  assert.equal(ab.byteLength, 4 * 2 ** 30)
  const u = new Uint8Array(ab)
  u[0] = 1
  u[u.length - 1] = 2
  assert.equal(u[u.length - 1], 2)
  release(ab)
})
