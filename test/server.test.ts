/** listen() and connect(): socket file mode, peer credentials, stale and live socket files. */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { alloc, connect, listen, type Channel, type GiftServer } from '../src/index.ts'
import { native } from '../src/native.ts'
import { digest, fillPattern, readablePackage, withTimeout } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'pagegift-server-'))
chmodSync(dir, 0o755)
after(() => rmSync(dir, { recursive: true, force: true }))

test('the socket file is created 0600; a connected pair exchanges gifts and messages', async () => {
  const path = join(dir, 'a.sock')
  const server = await listen(path)
  assert.equal(statSync(path).mode & 0o777, 0o600)
  const accepted = (async () => { for await (const ch of server) return ch })()
  const client = await connect(path)
  const peer = await accepted as Channel
  assert.equal(peer.peer.pid, process.pid)
  assert.equal(client.peer.uid, process.getuid?.())
  const buf = fillPattern(new Uint8Array(alloc(1 << 20)), 4)
  const want = digest([buf])
  const got = peer.receive()
  assert.equal((await client.gift(buf)).path, 'move')
  assert.equal(digest((await got).buffers), want)
  await client.send({ hello: 1 })
  assert.deepEqual((await peer.recv()).msg, { hello: 1 })
  client.close()
  peer.close()
  await server.close()
  assert.ok(!existsSync(path), 'close() removes the socket file')
})

test('a live listener is never stolen; a stale socket file is replaced; other files are never removed', async () => {
  const path = join(dir, 'b.sock')
  const first = await listen(path)
  await assert.rejects(listen(path), { code: 'EADDRINUSE', syscall: 'bind' })
  // A dead process leaves its socket file behind: simulate with a bound-then-closed socket.
  const fd = native.listen(join(dir, 'stale.sock'), 1)
  native.close(fd)
  const replaced = await listen(join(dir, 'stale.sock'))
  await replaced.close()
  const plain = join(dir, 'plain-file')
  writeFileSync(plain, 'precious')
  await assert.rejects(listen(plain), { code: 'EADDRINUSE', message: /not a socket/ })
  assert.ok(existsSync(plain))
  await first.close()
})

test('connect to nothing fails like Node: ENOENT / ECONNREFUSED with syscall and path', async () => {
  await assert.rejects(connect(join(dir, 'nobody.sock')), { code: 'ENOENT', syscall: 'connect' })
  await assert.rejects(connect(''), { name: 'TypeError' })
  await assert.rejects(connect('x'.repeat(200)), { name: 'RangeError' })
})

test('a peer of another uid is refused by SO_PEERCRED, even when the file mode would let it in', { skip: process.getuid?.() !== 0 ? 'needs root to run a child as another uid' : false }, async () => {
  const path = join(dir, 'c.sock')
  const server = await listen(path)
  chmodSync(path, 0o666)
  // The child runs the built package from a copy uid 65534 can read: the checkout may be 0700.
  const pkg = readablePackage()
  try {
    await refusedAsAnotherUid(server, path, pkg)
  } finally {
    rmSync(pkg, { recursive: true, force: true })
  }
  await server.close()
})

async function refusedAsAnotherUid (server: GiftServer, path: string, pkg: string): Promise<void> {
  const rejected = new Promise<Error>((resolve) => server.once('rejected', resolve))
  const script = join(pkg, 'peer.mjs')
  writeFileSync(script, `import { connect } from 'pagegift'
const ch = await connect(${JSON.stringify(path)}); ch.on('close', (e) => { console.log(e ? e.code : 'closed'); process.exit(0) })`, { mode: 0o644 })
  const child = spawn(process.execPath, [script], { cwd: pkg, uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000, killSignal: 'SIGKILL' })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  const err = await withTimeout(rejected, 60_000, 'the server to refuse the peer of uid 65534')
  assert.equal((err as NodeJS.ErrnoException).code, 'ERR_PAGEGIFT_PEER_REFUSED')
  assert.match(err.message, /uid 65534/)
  await withTimeout(exited, 60_000, 'the peer of uid 65534 to exit')
  assert.match(out, /ERR_PAGEGIFT_PEER_CLOSED/)
}
