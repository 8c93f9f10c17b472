import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import net from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { startKv, KV_BIN, withUpgradableKv } from './fixtures/kv-proc.ts'
import { loadKeys, verifyKeys } from '../tools/kv/load.ts'
import { KvClient } from '../src/kv/client.ts'

/** Starts redis-benchmark; `done` resolves with its exit code and output. */
function benchmark (port: number, n: number): { done: Promise<{ code: number | null, out: string }>, running: () => boolean } {
  const p = spawn('redis-benchmark', ['-p', String(port), '-t', 'set,get', '-n', String(n), '-r', '20000', '-d', '64', '-c', '50', '-P', '16', '--csv'])
  let out = ''
  let exited = false
  p.stdout.on('data', (d) => { out += d.toString() })
  p.stderr.on('data', (d) => { out += d.toString() })
  const done = new Promise<{ code: number | null, out: string }>((resolve) => p.on('close', (code) => { exited = true; resolve({ code, out }) }))
  return { done, running: () => !exited }
}

test('redis-benchmark spans 5 live upgrades with no error; keys written before verify by checksum; a client stays connected', async () => {
  await withUpgradableKv('kv-up-', ['--segment-size', '8mb'], async (kv) => {
    const loaded = await loadKeys({ port: kv.port, count: 20000, valueSize: 200, prefix: 'pre:' })
    assert.equal(loaded.errors, 0)
    const client = await KvClient.connect(kv.port)
    await client.call('SET', 'session', 'before')
    // A client in the middle of a command: its first half moves as unread bytes.
    const half = net.connect(kv.port, '127.0.0.1')
    await new Promise((resolve) => half.once('connect', resolve))
    let halfReplies = ''
    half.on('data', (d) => { halfReplies += d.toString() })
    half.write('*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$6\r\nmov')
    const bench = benchmark(kv.port, 2_500_000)
    await new Promise((resolve) => setTimeout(resolve, 300))
    for (let i = 0; i < 5; i++) {
      await kv.upgrade()
      assert.equal(String(await client.call('GET', 'session')), i === 0 ? 'before' : `after-${i - 1}`)
      await client.call('SET', 'session', `after-${i}`)
    }
    assert.ok(bench.running(), 'redis-benchmark ended before the 5th upgrade: make it longer')
    half.write('ed!\r\n*2\r\n$3\r\nGET\r\n$4\r\nhalf\r\n')
    const { code, out } = await bench.done
    assert.equal(code, 0, out)
    assert.match(out, /"SET","[\d.]+"/)
    assert.match(out, /"GET","[\d.]+"/)
    assert.doesNotMatch(out, /error/i)
    assert.equal(String(await client.call('GET', 'session')), 'after-4')
    assert.equal(halfReplies, '+OK\r\n$6\r\nmoved!\r\n')
    half.destroy()
    assert.match(String(await client.call('INFO', 'pagegift')), /generation:6\r\nupgrades:5/)
    await client.close()
    const v = await verifyKeys(kv.port, 20000, 200, 'pre:')
    assert.equal(v.missing, 0)
    assert.equal(v.wrong, 0)
    assert.equal(v.checksum.sum, loaded.checksum.sum)
  })
})

test('rollback: a successor killed before READY leaves the old generation serving, and redis-benchmark still finishes clean', async () => {
  await withUpgradableKv('kv-rb-', [], async (kv) => {
    const bench = benchmark(kv.port, 1_000_000)
    await new Promise((resolve) => setTimeout(resolve, 300))
    const mark = kv.gen.output().length
    const doomed = spawn(process.execPath, [KV_BIN, ...kv.args], { stdio: 'ignore', env: { ...process.env, PAGEGIFT_TEST_HOOKS: 'kv:before-ready=kill' } })
    const sig = await new Promise((resolve) => doomed.on('exit', (_code, signal) => resolve(signal)))
    assert.equal(sig, 'SIGKILL')
    await kv.gen.waitFor(/handoff failed, serving again/, 15000, mark)
    const { code, out } = await bench.done
    assert.equal(code, 0, out)
    assert.doesNotMatch(out, /error/i)
    const c = await KvClient.connect(kv.port)
    assert.match(String(await c.call('INFO', 'pagegift')), /generation:1\r\n/)
    await c.close()
    await kv.upgrade()
    const c2 = await KvClient.connect(kv.port)
    assert.match(String(await c2.call('INFO', 'pagegift')), /generation:2\r\n/)
    assert.ok(Number(await c2.call('DBSIZE')) > 1000)
    await c2.close()
  })
})

test('`pagegift upgrade <socket> -- pagegift-kv ...` upgrades it and reports the downtime', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-cli-'))
  const sock = join(dir, 'h.sock')
  const gen = await startKv(['--port', '0', '--handoff', sock])
  const cli = fileURLToPath(new URL('../bin/pagegift.js', import.meta.url))
  let successor = 0
  try {
    const c = await KvClient.connect(gen.port)
    await c.call('SET', 'kept', 'yes')
    const p = spawn(process.execPath, [cli, 'upgrade', sock, '--', process.execPath, KV_BIN, '--port', '0', '--handoff', sock], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (d) => { out += d.toString() })
    p.stderr.on('data', (d) => { out += d.toString() })
    // Wait for the CLI's exit, not for its pipes to close: the new generation inherits them and keeps serving.
    const code = await new Promise((resolve) => p.on('exit', resolve))
    successor = Number(/process_id:(\d+)/.exec(String(await c.call('INFO', 'server')))?.[1])
    assert.equal(code, 0, out)
    assert.match(out, /downtime: [\d.]+ ms/)
    assert.notEqual(successor, gen.pid)
    assert.equal(String(await c.call('GET', 'kept')), 'yes')
    assert.match(String(await c.call('INFO', 'pagegift')), /generation:2\r\n/)
    await c.close()
  } finally {
    await gen.stop()
    if (successor > 0) process.kill(successor, 'SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  }
})
