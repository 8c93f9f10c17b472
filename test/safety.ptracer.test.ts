/**
 * PR_SET_PTRACER (issue 9 item 8): never called where no grant is needed; under Yama ptrace_scope 1
 * only when opted in, for the one reader that asks for cma, undone when the gift settles, one reader
 * at a time. This kernel has no Yama, so a test hook makes the writer believe in scope 1, and strace
 * shows the prctl calls it really makes.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { release } from '../src/index.ts'
import { grantPtracer, revokePtracer } from '../src/ptracer.ts'
import { INLINE_CHUNKED_MAX } from '../src/wire.ts'
import { ask, spawnPeer } from './helpers.ts'

const hasStrace = spawnSync('strace', ['-V']).status === 0
// CI installs strace (.ci/run): there a missing strace fails these tests instead of skipping them.
if (!hasStrace && process.env.CI !== undefined && process.env.CI !== '') throw new Error('CI must run the PR_SET_PTRACER tests, but strace is not installed (apt-get install strace)')

/** Runs two gifts from a child writer to us while strace watches the child's prctl calls. */
async function prctlCalls (env: Record<string, string>): Promise<{ calls: string[], paths: string[], reasons: string[] }> {
  const peer = spawnPeer('gift-peer.ts', env)
  const out = join(tmpdir(), `pagegift-strace-${process.pid}-${Date.now()}`)
  try {
    await ask(peer.ch, { op: 'pid' })
    const strace = spawn('strace', ['-f', '-e', 'trace=prctl', '-o', out, '-p', String(peer.child.pid)], { stdio: ['ignore', 'ignore', 'pipe'] })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('strace did not attach within 10 s')), 10_000)
      strace.stderr.on('data', (d) => { if (/attached/.test(String(d))) { clearTimeout(timer); resolve() } })
    })
    const paths: string[] = []
    const reasons: string[] = []
    for (const seed of [1, 2]) {
      // Past what goes inline, so that the ladder decides.
      const reply = ask(peer.ch, { op: 'gift', kind: 'heap', sizes: [INLINE_CHUNKED_MAX + 1], seed })
      const g = await peer.ch.receive({ timeoutMs: 30_000 })
      await reply
      paths.push(g.path)
      reasons.push(g.reason ?? '')
      for (const b of g.buffers) release(b)
    }
    const stopped = new Promise((resolve) => strace.on('exit', resolve))
    strace.kill('SIGINT')
    await stopped
    const calls = readFileSync(out, 'utf8').split('\n').filter((l) => l.includes('PR_SET_PTRACER')).map((l) => l.replace(/^\d+\s+/, ''))
    return { calls, paths, reasons }
  } finally {
    rmSync(out, { force: true })
    await peer.ch.send({ op: 'exit' }).catch(() => {})
    await peer.exited
    peer.ch.close()
  }
}

test('without Yama a writer never calls PR_SET_PTRACER', { skip: !hasStrace && 'strace is not installed', timeout: 120_000 }, async () => {
  const { calls } = await prctlCalls({})
  assert.deepEqual(calls, [])
})

test('under Yama scope 1 without opt-in: no PR_SET_PTRACER, and splice serves with the reason', { skip: !hasStrace && 'strace is not installed', timeout: 120_000 }, async () => {
  const { calls, paths, reasons } = await prctlCalls({ PAGEGIFT_TEST_HOOKS: 'yama:ptrace_scope=1' })
  assert.deepEqual(calls, [])
  assert.deepEqual(paths, ['splice', 'splice'])
  assert.match(reasons[0], /PR_SET_PTRACER/)
})

test('under Yama scope 1 with PAGEGIFT_CMA_PTRACER=1: granted to the reader when it asks for cma, undone when the gift settles', { skip: !hasStrace && 'strace is not installed', timeout: 120_000 }, async () => {
  const { calls } = await prctlCalls({ PAGEGIFT_TEST_HOOKS: 'yama:ptrace_scope=1', PAGEGIFT_CMA_PTRACER: '1' })
  const named = `prctl(PR_SET_PTRACER, ${process.pid}`
  assert.equal(calls.length, 4, calls.join('\n'))
  assert.ok(calls[0].startsWith(named), calls[0])
  assert.ok(calls[1].startsWith('prctl(PR_SET_PTRACER, 0'), calls[1])
  assert.ok(calls[2].startsWith(named), calls[2])
  assert.ok(calls[3].startsWith('prctl(PR_SET_PTRACER, 0'), calls[3])
})

test('the grant is serialized: one reader pid at a time, shared by its gifts, cleared by the last', () => {
  assert.equal(grantPtracer(4_000_001), true)
  assert.equal(grantPtracer(4_000_001), true)
  assert.equal(grantPtracer(4_000_002), false, 'a second reader is refused while the first holds it')
  revokePtracer(4_000_001)
  assert.equal(grantPtracer(4_000_002), false, 'still held by the first reader\'s other gift')
  revokePtracer(4_000_001)
  assert.equal(grantPtracer(4_000_002), true)
  revokePtracer(4_000_002)
})
