/**
 * The receive pool: a receive target the user releases keeps its pages mapped for the next receive
 * of that size, and nothing else ever reaches them: not the released buffer, not its finalizer, not
 * a buffer whose pages left the process.
 */
import assert from 'node:assert/strict'
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs'
import { createServer, connect as netConnect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { alloc, channelPair, fdOf, isGiftable, pageSize, release, trimReceivePool, type Channel } from '../src/index.ts'
import { AsyncOp, errno, native } from '../src/native.ts'
import { INLINE_CHUNKED_MAX } from '../src/wire.ts'
import { populate, regionOf } from '../src/pages.ts'
import { ask, digest, fdCount, fillPattern, memfdMappings, runScript, settle, spawnPeer, withTimeout } from './helpers.ts'

const gc = (): void => { (globalThis as { gc?: () => void }).gc?.() }
const SIZE = 256 * 1024

/** The address of a giftable buffer's pages. */
function addressOf (ab: ArrayBuffer): number {
  const region = regionOf(ab)
  assert.ok(region !== undefined, 'not giftable')
  return native.addresses([region.handle, 0, 1])[0]
}

/** Gifts `size` heap bytes of `seed` from a to b by the copy path, and returns what b received. */
async function copyGift (a: Channel, b: Channel, size: number, seed: number): Promise<ArrayBuffer> {
  const src = fillPattern(new Uint8Array(size), seed)
  const want = digest([src])
  const [, got] = await Promise.all([a.gift(src, { path: 'copy' }), b.receive()])
  assert.equal(got.path, 'copy')
  assert.equal(digest(got.buffers), want, 'the received bytes are the bytes sent')
  assert.ok(isGiftable(got.buffers[0]))
  return got.buffers[0]
}

/** Runs `body` with an empty receive pool and a new channel pair, which it closes whatever happens. */
async function withPair (body: (a: Channel, b: Channel) => Promise<void>): Promise<void> {
  trimReceivePool()
  const [a, b] = channelPair()
  try {
    await body(a, b)
  } finally {
    a.close()
    b.close()
  }
}

test('a released receive target is reused by the next receive of its page-rounded size, with the new bytes only', async () => withPair(async (a, b) => {
  const first = await copyGift(a, b, SIZE, 1)
  const at = addressOf(first)
  const memfd = regionOf(first)?.pages.extents[0].memfd
  const view = new Uint8Array(first)
  release(first)
  assert.equal(first.byteLength, 0, 'the released buffer is detached')
  assert.equal(view.byteLength, 0, 'and so are its views')
  // A shorter gift in the same page bucket takes the same pages: its buffer ends at its length,
  // and the bytes after it, up to the page's end, are zeros rather than the first gift's.
  const second = await copyGift(a, b, SIZE - 100, 2)
  assert.equal(regionOf(second)?.pages.extents[0].memfd, memfd, 'the pooled pages were reused')
  assert.notEqual(addressOf(second), at, 'at a new address: the released buffer\'s is unmapped')
  assert.ok(!readFileSync('/proc/self/maps', 'utf8').split('\n').some((l) => l.startsWith(at.toString(16) + '-')), 'nothing is mapped at the old address')
  assert.equal(second.byteLength, SIZE - 100)
  const fd = fdOf(second)
  try {
    const tail = Buffer.alloc(100)
    const h = openSync(`/proc/self/fd/${fd}`, 'r')
    try { assert.equal(readSync(h, tail, 0, 100, SIZE - 100), 100) } finally { closeSync(h) }
    assert.ok(tail.every((x) => x === 0), 'the bytes past the new length were zeroed')
  } finally {
    native.close(fd)
  }
  // Exported by fdOf: its pages may be mapped elsewhere, so they do not go back to the pool.
  release(second)
  assert.equal(trimReceivePool(), 0)
}))

test('a socket write still pending on a released buffer fails; it never sends the next gift\'s bytes', async () => {
  trimReceivePool()
  const dir = mkdtempSync(join(tmpdir(), 'pagegift-pool-'))
  const [a, b] = channelPair()
  const server = createServer({ pauseOnConnect: true })
  try {
    const size = 16 << 20
    const path = join(dir, 's')
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve))
    await new Promise<void>((resolve) => server.listen(path, resolve))
    const client = netConnect(path)
    const peer = await withTimeout(accepted, 10_000, 'the connection')
    const [, got] = await Promise.all([a.gift(new Uint8Array(size).fill(0x11), { path: 'copy' }), b.receive()])
    const first = got.buffers[0]
    const failed = new Promise<Error | undefined>((resolve) => {
      client.once('error', resolve)
      client.write(new Uint8Array(first), (err) => resolve(err ?? undefined))
    })
    release(first)
    // The next gift of that size takes the pooled pages and fills them with 0xAB.
    const src = new Uint8Array(size).fill(0xab)
    const [, second] = await Promise.all([a.gift(src, { path: 'copy' }), b.receive()])
    let leaked = 0
    let other = 0
    peer.on('data', (d: Buffer) => { for (const x of d) if (x === 0xab) leaked++; else if (x !== 0x11) other++ })
    peer.resume()
    const err = await withTimeout(failed, 30_000, 'the write to end')
    assert.equal((err as NodeJS.ErrnoException | undefined)?.code, 'EFAULT', 'the pending write failed on the unmapped address')
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal(leaked, 0, 'no byte of the second gift reached the socket')
    assert.equal(other, 0, 'only the first gift\'s bytes did')
    release(second.buffers[0])
    client.destroy()
    peer.destroy()
  } finally {
    server.close()
    a.close()
    b.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

/** The /proc/self/maps line of the mapping that starts at `at`, as [start, end], or undefined. */
function mappingAt (at: number): [number, number] | undefined {
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const [range] = line.split(' ')
    const [start, end] = (range ?? '').split('-').map((x) => parseInt(x, 16))
    if (start === at) return [start, end]
  }
  return undefined
}

test('a receive target sits alone in whole page tables, and moves to the pool and back with them', async () => withPair(async (a, b) => {
  const TABLE = 2 * 1024 * 1024
  const first = await copyGift(a, b, SIZE, 3)
  const at = addressOf(first)
  assert.equal(at % TABLE, 0, 'the target starts on a page-table boundary')
  assert.deepEqual(mappingAt(at), [at, at + TABLE], 'and its mapping covers that whole table, nothing else in it')
  assert.equal(first.byteLength, SIZE, 'the buffer is only the gift\'s bytes: the rest of the table is never reachable')
  release(first)
  const second = await copyGift(a, b, SIZE, 4)
  const moved = addressOf(second)
  assert.notEqual(moved, at)
  assert.equal(moved % TABLE, 0, 'the pooled pages moved to another table boundary')
  assert.deepEqual(mappingAt(moved), [moved, moved + TABLE])
  assert.equal(mappingAt(at), undefined, 'the old table is unmapped')
  // Giftable memory the user allocates is not a slot: it maps exactly its pages.
  const own = alloc(SIZE)
  const ownAt = addressOf(own)
  assert.deepEqual(mappingAt(ownAt), [ownAt, ownAt + SIZE])
  release(own)
  release(second)
  assert.equal(trimReceivePool(), SIZE)
  await settle()
  assert.equal(mappingAt(moved), undefined, 'a trim unmaps the whole slot')
}))

test('no span or page move reaches the bytes of a slot past its target\'s pages', async () => withPair(async (a, b) => {
  const got = await copyGift(a, b, SIZE, 6)
  const region = regionOf(got)
  assert.ok(region !== undefined)
  assert.throws(() => native.addresses([region.handle, SIZE - pageSize, 2 * pageSize]), { code: 'ERR_OUT_OF_RANGE' })
  const src = new Uint8Array(2 * pageSize)
  const [addr] = native.addresses([src, 0, src.byteLength])
  assert.throws(() => native.async(AsyncOp.VmRead, process.pid, 0, [region.handle, SIZE, pageSize], new Float64Array([addr, pageSize])), { code: 'ERR_OUT_OF_RANGE' })
  const other = alloc(pageSize)
  const fd = fdOf(other)
  try {
    assert.equal(native.mapFixed(region.handle, SIZE, fd, 0, pageSize), errno.EINVAL, 'no page may be mapped past the target')
  } finally {
    native.close(fd)
    release(other)
  }
  // Inside the target, the same calls work.
  assert.equal(await native.async(AsyncOp.VmRead, process.pid, 0, [region.handle, SIZE - pageSize, pageSize], new Float64Array([addr, pageSize])), pageSize)
  release(got)
  assert.equal(trimReceivePool(), SIZE)
}))

test('the finalizer of a pooled buffer leaves the pages to the pool, and a trim frees every fd and mapping', async () => {
  trimReceivePool()
  await settle()
  const fds = fdCount()
  const maps = memfdMappings()
  const [a, b] = channelPair()
  try {
    for (let i = 0; i < 5; i++) {
      const got = await copyGift(a, b, SIZE, 10 + i)
      release(got)
      // The detached buffer is garbage now: its collection must not unmap the pages the pool holds.
      gc()
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    assert.equal(memfdMappings(), maps + 1, 'one pooled mapping, reused five times')
    const again = await copyGift(a, b, SIZE, 99)
    // Every page written and read: a pooled mapping unmapped under us would crash the process here.
    new Uint8Array(again).fill(7)
    assert.equal(new Uint8Array(again).reduce((s, x) => s + x, 0), 7 * SIZE)
    release(again)
    assert.equal(trimReceivePool(), SIZE)
    assert.equal(trimReceivePool(), 0, 'a second trim finds nothing')
  } finally {
    a.close()
    b.close()
  }
  await settle()
  assert.equal(fdCount(), fds, 'no fd left open')
  assert.equal(memfdMappings(), maps, 'no mapping left')
})

test('only receive targets whose pages never left the process go to the pool', async () => withPair(async (a, b) => {
  // alloc() memory is the user's: release() unmaps it.
  release(alloc(SIZE))
  assert.equal(trimReceivePool(), 0, 'alloc() memory is not pooled')
  // A received buffer gifted onward: its pages are the peer's now.
  const got = await copyGift(a, b, SIZE, 3)
  const [, echoed] = await Promise.all([b.gift(got), a.receive()])
  assert.equal(trimReceivePool(), 0, 'a gifted target is not pooled')
  for (const buf of echoed.buffers) if (isGiftable(buf)) release(buf)
  trimReceivePool()
  // Pages moved into a target replace its own: they are another memfd's. Moved into its middle,
  // they split its slot in three; the release unmaps all of it.
  await settle()
  const maps = memfdMappings()
  const target = await copyGift(a, b, SIZE, 4)
  const moved = alloc(2 * pageSize)
  new Uint8Array(moved).fill(9)
  const [, into] = await Promise.all([a.gift(moved, { path: 'move' }), b.receive({ into: new Uint8Array(target, 16 * pageSize, 2 * pageSize) })])
  assert.equal(into.path, 'move')
  assert.ok(new Uint8Array(target, 16 * pageSize, 2 * pageSize).every((x) => x === 9), 'the moved pages are in the middle of the target')
  release(target)
  assert.equal(trimReceivePool(), 0, 'a target that pages moved into is not pooled')
  await settle()
  assert.equal(memfdMappings(), maps, 'the split slot was unmapped whole')
  // Collected without release(): unmapped as before, nothing pooled.
  let lost: ArrayBuffer | undefined = await copyGift(a, b, SIZE, 5)
  assert.ok(lost.byteLength > 0)
  lost = undefined
  await settle()
  assert.equal(trimReceivePool(), 0, 'a collected target is not pooled')
}))

test('the pool holds at most 64 targets, none under 64 KiB, so it never holds many fds', async () => withPair(async (a, b) => {
  release(await copyGift(a, b, 4096, 1))
  assert.equal(trimReceivePool(), 0, 'a small target is unmapped')
  const held: ArrayBuffer[] = []
  for (let i = 0; i < 70; i++) held.push(await copyGift(a, b, 65_536, 2))
  for (const buf of held) release(buf)
  assert.equal(trimReceivePool(), 64 * 65_536)
}))

test('a release that does not fit makes room: the oldest entries go, the latest stays', async () => {
  trimReceivePool()
  await settle()
  const fds = fdCount()
  const maps = memfdMappings()
  await withPair(async (a, b) => {
    const old = await copyGift(a, b, 131_072, 5)
    const oldMemfd = regionOf(old)?.pages.extents[0].memfd
    release(old)
    const held: ArrayBuffer[] = []
    for (let i = 0; i < 64; i++) held.push(await copyGift(a, b, 65_536, 6))
    const last = regionOf(held[63])?.pages.extents[0].memfd
    for (const buf of held) release(buf)
    // 65 releases for 64 places: the 128 KiB target, released first, made room for the last one.
    const again = await copyGift(a, b, 131_072, 7)
    assert.notEqual(regionOf(again)?.pages.extents[0].memfd, oldMemfd, 'the oldest entry was unmapped')
    release(again)
    const latest = await copyGift(a, b, 65_536, 8)
    assert.equal(regionOf(latest)?.pages.extents[0].memfd, last, 'the latest release is reused first')
    release(latest)
    assert.equal(trimReceivePool(), 63 * 65_536 + 131_072)
  })
  await settle()
  assert.equal(fdCount(), fds, 'every evicted entry closed its fd')
  assert.equal(memfdMappings(), maps, 'and unmapped its pages')
})

test('a target that a job still uses is unmapped once the job ends, not pooled', async () => withPair(async (a, b) => {
  const got = await copyGift(a, b, 4 << 20, 6)
  const job = populate(got)
  release(got)
  assert.ok((await withTimeout(job, 30_000, 'populate')) >= 0)
  assert.equal(trimReceivePool(), 0)
}))

test('the pool unmaps what stays unused for a second', async () => {
  trimReceivePool()
  await settle()
  const maps = memfdMappings()
  const [a, b] = channelPair()
  try {
    release(await copyGift(a, b, SIZE, 7))
    assert.equal(memfdMappings(), maps + 1)
    await withTimeout((async () => { while (memfdMappings() > maps) await new Promise((resolve) => setTimeout(resolve, 100)) })(), 5000, 'the pool to expire')
    assert.equal(trimReceivePool(), 0)
  } finally {
    a.close()
    b.close()
  }
})

test('a cma gift to another process lands in its pooled pages, intact, gift after gift', async () => {
  const peer = spawnPeer('pool-peer.ts')
  try {
    const n = 8
    const report = ask(peer.ch, { op: 'receive-pool', n })
    const sent: string[] = []
    // Past what goes inline (INLINE_CHUNKED_MAX), so that the ladder decides: cma.
    const size = 2 * INLINE_CHUNKED_MAX
    for (let i = 0; i < n; i++) {
      const src = fillPattern(new Uint8Array(size - (i % 3) * 1000), 20 + i)
      sent.push(digest([src]))
      assert.equal((await peer.ch.gift(src)).path, 'cma')
    }
    const got = await withTimeout(report, 60_000, 'the peer\'s report') as { gifts: Array<{ path: string, digest: string }>, same: number, pooled: number }
    assert.deepEqual(got.gifts.map((g) => g.digest), sent, 'every gift arrived intact')
    assert.ok(got.gifts.every((g) => g.path === 'cma'))
    assert.equal(got.same, n, 'every gift after the first landed in the pooled pages')
    assert.equal(got.pooled, size, 'the pool held the one buffer at the end')
  } finally {
    // A peer still in 'receive-pool' (a failed assertion above) reads no command: it is killed.
    await peer.ch.send({ op: 'exit' }).catch(() => {})
    await withTimeout(peer.exited, 10_000, 'the peer to exit').catch(() => { peer.child.kill('SIGKILL') })
    peer.ch.close()
  }
})

/** A module that receives copied gifts of these sizes, releasing each, then prints what the pool holds. */
const receiveSizes = (sizes: number[]): string => `
  import { channelPair, release, trimReceivePool } from './src/index.ts'
  const [a, b] = channelPair()
  for (const n of ${JSON.stringify(sizes)}) {
    const [, g] = await Promise.all([a.gift(new Uint8Array(n), { path: 'copy' }), b.receive()])
    release(g.buffers[0])
  }
  process.stdout.write(String(trimReceivePool()))
  a.close(); b.close()`

test('PAGEGIFT_RECEIVE_POOL_MB=0 turns the pool off', async () => {
  assert.equal(await runScript(receiveSizes([1 << 20]), { PAGEGIFT_RECEIVE_POOL_MB: '0' }), '0')
  assert.equal(await runScript(receiveSizes([1 << 20]), { PAGEGIFT_RECEIVE_POOL_MB: '' }), String(1 << 20), 'the default pools it')
})

test('PAGEGIFT_RECEIVE_POOL_MB bounds the bytes: a release past it evicts the oldest, one larger than it is not pooled', async () => {
  // 256 KiB, then 1 MiB in a 1 MiB pool: the 1 MiB target takes the place of the older one.
  assert.equal(await runScript(receiveSizes([256 << 10, 1 << 20]), { PAGEGIFT_RECEIVE_POOL_MB: '1' }), String(1 << 20))
  // 2 MiB never fits: the pool keeps what it had.
  assert.equal(await runScript(receiveSizes([256 << 10, 2 << 20]), { PAGEGIFT_RECEIVE_POOL_MB: '1' }), String(256 << 10))
})
