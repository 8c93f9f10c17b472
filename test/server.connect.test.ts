/** connect() to a listener whose backlog is full (a stuck predecessor) must never stall the event loop. */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { connect } from '../src/index.ts'
import { native } from '../src/native.ts'
import { fixtures } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'pagegift-connect-'))
after(() => rmSync(dir, { recursive: true, force: true }))

interface Report { results: { name: string, ok: boolean, code?: string, causeCode?: string, causeSyscall?: string, ms: number }[], maxGap: number, fdDelta: number }

/**
 * A listener that never accepts, with its backlog full: backlog 0 holds one pending connection,
 * and one connect (which completes at once, the backlog being empty) takes it.
 */
function fullListener (name: string): { path: string, fd: number, pending: number } {
  const path = join(dir, name)
  const fd = native.listen(path, 0)
  assert.ok(fd >= 0, `listen: ${fd}`)
  const pending = native.connect(path)
  assert.ok(pending >= 0, `first connect: ${pending}`)
  return { path, fd, pending }
}

/** Runs the fixture, which connects from its own process: an old blocking connect stalls only it, and the deadline kills it. */
async function runConnector (path: string, mode: string, onLine?: (line: string) => void): Promise<Report> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(fixtures, 'server-connect.ts'), path, mode], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d
    if (d.includes('connecting')) onLine?.('connecting')
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const code = await new Promise((resolve) => child.on('exit', resolve))
  clearTimeout(killer)
  const last = out.trim().split('\n').at(-1) ?? ''
  assert.ok(last.startsWith('{'), `the connector exited (${String(code)}) without a report: it stalled in connect`)
  return JSON.parse(last) as Report
}

test('connect, status, join and the stale-socket probe give up on a full backlog by their deadline, and the event loop keeps running', async () => {
  const l = fullListener('full.sock')
  try {
    const r = await runConnector(l.path, 'timeout')
    const by = Object.fromEntries(r.results.map((x) => [x.name, x]))
    assert.equal(by.connect.code, 'ERR_PAGEGIFT_CONNECT_TIMEOUT')
    assert.equal(by.connect.causeCode, 'EAGAIN')
    assert.equal(by.connect.causeSyscall, 'connect')
    assert.ok(by.connect.ms >= 1400 && by.connect.ms < 4000, `connect gave up after ${by.connect.ms} ms (deadline 1500)`)
    // A full backlog means someone listens: never stolen, and answered at once.
    assert.equal(by.listen.code, 'EADDRINUSE')
    assert.ok(by.listen.ms < 1000, `listen took ${by.listen.ms} ms`)
    for (const name of ['status', 'join']) {
      assert.equal(by[name].code, 'ERR_PAGEGIFT_CONNECT_TIMEOUT', `${name}: ${JSON.stringify(by[name])}`)
      assert.ok(by[name].ms < 8000, `${name} took ${by[name].ms} ms (default deadline 5000)`)
    }
    assert.ok(r.maxGap < 500, `the connector's event loop stalled for ${r.maxGap} ms`)
    assert.equal(r.fdDelta, 0, 'every retried socket is closed')
  } finally {
    native.close(l.pending)
    native.close(l.fd)
  }
})

test('connect keeps retrying while the backlog is full and succeeds once the listener accepts', async () => {
  const l = fullListener('busy.sock')
  let accepted = -1
  try {
    const r = await runConnector(l.path, 'wait', () => {
      setTimeout(() => { accepted = native.accept(l.fd) }, 1000)
    })
    assert.ok(accepted >= 0, `accept: ${accepted}`)
    assert.equal(r.results[0].ok, true, JSON.stringify(r.results[0]))
    assert.ok(r.results[0].ms >= 900, `connected after ${r.results[0].ms} ms, before a slot was freed`)
    assert.ok(r.maxGap < 500, `the connector's event loop stalled for ${r.maxGap} ms`)
  } finally {
    if (accepted >= 0) native.close(accepted)
    native.close(l.pending)
    native.close(l.fd)
  }
})

test('connect checks its timeout option', async () => {
  await assert.rejects(connect(join(dir, 'x.sock'), { timeoutMs: -1 }), { name: 'RangeError', message: /timeoutMs/ })
  await assert.rejects(connect(join(dir, 'x.sock'), { timeoutMs: 0 }), { code: 'ENOENT', syscall: 'connect' })
})
