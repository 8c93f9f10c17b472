/**
 * The QMP client and the host checks, against a real QEMU with no guest (`-machine none`), which
 * starts in a fraction of a second.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { QmpClient } from '../src/qemu/qmp.ts'
import { findQemu, parseMemorySize, kvmUsable } from '../src/qemu/host.ts'
import { isQemuError } from '../src/qemu/errors.ts'
import { qemuSkipReason, sleep, waitGone } from '../tools/guest/qemu.ts'

const skip = qemuSkipReason()
const fixtures = join(import.meta.dirname, 'fixtures', 'guest')

describe('QMP client against a real QEMU', { skip }, () => {
  let dir: string
  let qemu: ChildProcess
  let qmp: QmpClient

  async function startQemu (name: string): Promise<{ child: ChildProcess, client: QmpClient }> {
    const path = join(dir, `${name}.qmp`)
    const child = spawn('qemu-system-x86_64', ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${path},server=on,wait=off`], { stdio: 'ignore' })
    for (let i = 0; i < 100; i++) {
      try {
        return { child, client: await QmpClient.connect(path, { timeoutMs: 2000 }) }
      } catch { await sleep(50) }
    }
    child.kill('SIGKILL')
    throw new Error('QEMU did not open its QMP socket')
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pagegift-qmp-'))
    const started = await startQemu('a')
    qemu = started.child
    qmp = started.client
  })

  after(async () => {
    qmp?.close()
    qemu?.kill('SIGKILL')
    if (qemu?.pid !== undefined) await waitGone(qemu.pid)
    rmSync(dir, { recursive: true, force: true })
  })

  test('reads the greeting and negotiates capabilities', async () => {
    const v = await qmp.execute<{ qemu: { major: number, minor: number } }>('query-version')
    assert.equal(v.qemu.major, qmp.version.major)
    assert.equal(v.qemu.minor, qmp.version.minor)
    assert.ok(qmp.version.major >= 5)
  })

  test('matches concurrent commands with their replies by id', async () => {
    const [status, version, name, status2] = await Promise.all([
      qmp.execute<{ status: string }>('query-status'),
      qmp.execute<{ qemu: object }>('query-version'),
      qmp.execute<object>('query-name'),
      qmp.execute<{ running: boolean }>('query-status'),
    ])
    assert.equal(typeof status.status, 'string')
    assert.ok('qemu' in version)
    assert.equal(typeof name, 'object')
    assert.equal(typeof status2.running, 'boolean')
  })

  test('turns an error reply into an Error with code and QMP class', async () => {
    await assert.rejects(qmp.execute('no-such-command'), (err: unknown) => {
      assert.ok(isQemuError(err, 'ERR_QMP_COMMAND'))
      assert.equal(err.qmpClass, 'CommandNotFound')
      return true
    })
    await assert.rejects(qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'no-such-cap', state: true }] }),
      (err: unknown) => isQemuError(err, 'ERR_QMP_COMMAND') && err.qmpClass === 'GenericError')
    // The connection stays usable after an error reply.
    assert.ok((await qmp.execute<{ running: boolean }>('query-status')) !== undefined)
  })

  test('delivers events with QEMU timestamps, including ones that came before the wait', async () => {
    const since = qmp.nextEventSeq
    const before = Date.now()
    await qmp.execute('stop')
    await qmp.execute('cont')
    const stop = await qmp.waitEvent('STOP', { since, timeoutMs: 2000 })
    const resume = await qmp.waitEvent('RESUME', { since, timeoutMs: 2000 })
    assert.ok(resume.seq > stop.seq)
    assert.ok(resume.timeMs >= stop.timeMs)
    assert.ok(Math.abs(stop.timeMs - before) < 5000, 'timestamps are wall-clock milliseconds')
    await assert.rejects(qmp.waitEvent('SHUTDOWN', { since, timeoutMs: 100 }), (err: unknown) => isQemuError(err, 'ERR_QMP_TIMEOUT'))
  })

  test('times out when a peer never sends the greeting', async () => {
    const path = join(dir, 'silent.sock')
    const server = createServer(() => {})
    await new Promise<void>((resolve) => server.listen(path, resolve))
    try {
      await assert.rejects(QmpClient.connect(path, { timeoutMs: 200 }), (err: unknown) => isQemuError(err, 'ERR_QMP_TIMEOUT'))
    } finally {
      server.close()
    }
  })

  test('rejects a peer that is not QMP, and a missing socket', async () => {
    const path = join(dir, 'http.sock')
    const server = createServer((c) => c.end('HTTP/1.1 400 Bad Request\r\n\r\n\n'))
    await new Promise<void>((resolve) => server.listen(path, resolve))
    try {
      await assert.rejects(QmpClient.connect(path), (err: unknown) => isQemuError(err, 'ERR_QMP_PROTOCOL'))
    } finally {
      server.close()
    }
    await assert.rejects(QmpClient.connect(join(dir, 'missing.sock')), (err: unknown) => isQemuError(err, 'ERR_QMP_CLOSED'))
  })

  test('fails waits and commands in flight when QEMU goes away', async () => {
    const { child, client } = await startQemu('b')
    const waiting = client.waitEvent('NEVER', { timeoutMs: 10_000 })
    child.kill('SIGKILL')
    await assert.rejects(waiting, (err: unknown) => isQemuError(err, 'ERR_QMP_CLOSED'))
    await assert.rejects(client.execute('query-status'), (err: unknown) => isQemuError(err, 'ERR_QMP_CLOSED'))
    assert.ok(await waitGone(child.pid as number))
  })
})

describe('host checks', () => {
  test('a missing QEMU is ERR_QEMU_NOT_FOUND', async () => {
    await assert.rejects(findQemu('pagegift-no-such-qemu'), (err: unknown) => isQemuError(err, 'ERR_QEMU_NOT_FOUND'))
  })

  test('a QEMU older than 5.0 is ERR_QEMU_TOO_OLD', async () => {
    await assert.rejects(findQemu(join(fixtures, 'old-qemu.sh')), (err: unknown) => isQemuError(err, 'ERR_QEMU_TOO_OLD') && /4\.2\.1/.test(err.message))
  })

  test('the installed QEMU is found with its version', { skip }, async () => {
    const q = await findQemu()
    assert.match(q.versionText, /^\d+\.\d+\.\d+$/)
  })

  test('memory sizes parse, and ones that do not fit are ERR_QEMU_MEMORY_SIZE', () => {
    assert.equal(parseMemorySize('256M'), 256 * 1024 ** 2)
    assert.equal(parseMemorySize('1G'), 1024 ** 3)
    assert.equal(parseMemorySize('512'), 512 * 1024 ** 2)
    for (const bad of ['lots', '1M', '257K', '3000T', '-1G']) {
      assert.throws(() => parseMemorySize(bad), (err: unknown) => isQemuError(err, 'ERR_QEMU_MEMORY_SIZE'), bad)
    }
  })

  test('KVM detection gives a reason either way', () => {
    const k = kvmUsable()
    assert.equal(typeof k.usable, 'boolean')
    assert.ok(k.reason.length > 0)
  })
})
