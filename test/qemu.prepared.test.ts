/**
 * Prepared destinations, through the CLI: `pagegift qemu prepare` starts the next QEMU ahead and
 * `upgrade` switches to it; a prepared QEMU that died is replaced by a fresh one during the upgrade;
 * `prepare --cancel`, a mismatching `--qemu`, a keeper handoff and `stop` each get rid of it or say
 * why not.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { buildGuest, type Guest } from '../tools/guest/build.ts'
import { countsAreContiguous, isAlive, killQuietly, lastCount, qemuSkipReason, readConsole, sleep, waitForCount, waitGone } from '../tools/guest/qemu.ts'
import { request } from '../src/qemu/control.ts'
import type { PrepareReply } from '../src/qemu/keeper.ts'
import type { PreparedStatus, UpgradeRecord, VmStatus } from '../src/qemu/vm.ts'

const execFileAsync = promisify(execFile)
const skip = qemuSkipReason()
const bin = join(import.meta.dirname, '..', 'bin', 'pagegift.js')
const fakeQemu = join(import.meta.dirname, 'fixtures', 'guest', 'fake-qemu.sh')

describe('pagegift qemu prepare: a destination started ahead of the upgrade', { skip, timeout: 120_000 }, () => {
  let guest: Guest
  let dir: string
  const pids = new Set<number>()

  async function cli (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
    try {
      const { stdout, stderr } = await execFileAsync(process.execPath, [bin, 'qemu', ...args], { env: { ...process.env, PAGEGIFT_QEMU_DIR: dir }, timeout: 60_000 })
      return { code: 0, stdout, stderr }
    } catch (err) {
      const e = err as { code?: number, stdout?: string, stderr?: string }
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
    }
  }

  // Status goes straight to the control socket: a CLI process per check would double the test's time.
  async function status (): Promise<VmStatus> {
    const s = await request<VmStatus>(join(dir, 'vm1.ctl'), { op: 'status' }, 5000)
    pids.add(s.pid).add(s.keeperPid)
    if (s.prepared !== undefined) pids.add(s.prepared.pid)
    return s
  }

  async function prepare (): Promise<PreparedStatus> {
    const reply = await request<PrepareReply>(join(dir, 'vm1.ctl'), { op: 'prepare', timeoutMs: 30_000 }, 45_000)
    assert.ok('prepared' in reply)
    pids.add(reply.prepared.pid)
    return reply.prepared
  }

  async function upgrade (): Promise<UpgradeRecord> {
    const r = await cli('upgrade', 'vm1', '--json')
    assert.equal(r.code, 0, r.stderr)
    const u = JSON.parse(r.stdout) as UpgradeRecord
    pids.add(u.newPid)
    return u
  }

  const consolePath = (): string => join(dir, 'vm1.console.log')

  before(async () => {
    guest = buildGuest()
    dir = mkdtempSync(join(tmpdir(), 'pagegift-qemu-prep-'))
    const r = await cli('start', '--name', 'vm1', '--memory', '256M', '--accel', 'auto', '--detach', '--',
      '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', guest.append())
    assert.equal(r.code, 0, r.stderr + r.stdout)
    await status()
    await waitForCount(consolePath(), 2)
  })

  after(async () => {
    for (const pid of pids) killQuietly(pid, 'SIGKILL')
    for (const pid of pids) await waitGone(pid)
    rmSync(dir, { recursive: true, force: true })
    rmSync(guest.dir, { recursive: true, force: true })
  })

  test('upgrade switches to the prepared QEMU: only the migration is left in the update', async () => {
    const before = await status()
    const r = await cli('prepare', 'vm1')
    assert.equal(r.code, 0, r.stderr)
    const p = (await status()).prepared
    assert.ok(p !== undefined)
    assert.match(r.stdout, new RegExp(`prepared: destination QEMU pid ${p.pid} .* waits`))
    assert.equal(p.state, 'waiting')
    assert.equal(p.generation, before.generation + 1)
    assert.ok(isAlive(p.pid))
    const shown = await status()
    assert.equal(shown.pid, before.pid, 'the guest still runs on the old QEMU')
    const again = await prepare()
    assert.equal(again.pid, p.pid, 'preparing twice keeps the waiting QEMU')

    const countBefore = await waitForCount(consolePath(), lastCount(consolePath()) + 1)
    const u = await upgrade()
    assert.equal(u.destination, 'prepared')
    assert.equal(u.preparedFallback, undefined)
    assert.equal(u.oldPid, before.pid)
    assert.equal(u.newPid, p.pid, 'the guest moved to the prepared QEMU')
    assert.ok(u.bytesTransferred > 0 && u.bytesTransferred < 1_000_000, `${u.bytesTransferred} bytes crossed the migration socket`)
    assert.ok(u.totalMs > 0 && u.sourceExitMs >= 0)
    const after = await status()
    assert.equal(after.pid, p.pid)
    assert.equal(after.prepared, undefined, 'the prepared destination was used up')
    assert.equal(after.state, 'running')
    assert.ok(await waitGone(u.oldPid), 'the old QEMU exited')
    await waitForCount(consolePath(), countBefore + 3)
    const { inits, counts } = readConsole(consolePath())
    assert.equal(inits, 1, 'init ran once: the guest never restarted')
    assert.ok(countsAreContiguous(counts))
  })

  test('a prepared QEMU that died is replaced by a fresh one, and the upgrade says so', async () => {
    const p = await prepare()
    killQuietly(p.pid, 'SIGKILL')
    assert.ok(await waitGone(p.pid))
    // The keeper learns of the exit when it reaps its child, a moment after the pid is gone.
    let shown = await status()
    for (let i = 0; i < 50 && shown.prepared?.state === 'waiting'; i++) shown = await sleep(20).then(status)
    assert.match(shown.prepared?.state ?? '', /exited \(signal SIGKILL\)/)
    const human = await cli('status', 'vm1')
    assert.match(human.stdout, /the next upgrade starts a fresh QEMU/)

    const before = shown.pid
    const r = await cli('upgrade', 'vm1')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`prepared destination \\(QEMU pid ${p.pid}\\) could not be used: it exited .*started a fresh QEMU instead`))
    assert.match(r.stdout, /fresh destination/)
    const after = await status()
    assert.notEqual(after.pid, before)
    assert.notEqual(after.pid, p.pid)
    assert.equal(after.upgrades.at(-1)?.destination, 'fresh')
    await waitForCount(consolePath(), lastCount(consolePath()) + 2)
    assert.equal(readConsole(consolePath()).inits, 1)
  })

  test('an upgrade to another QEMU than the prepared one is refused and changes nothing', async () => {
    const before = await status()
    const p = await prepare()
    const r = await cli('upgrade', 'vm1', '--qemu', fakeQemu)
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /ERR_QEMU_PREPARED_MISMATCH/)
    assert.match(r.stderr, /prepare vm1 --cancel/)
    const after = await status()
    assert.equal(after.pid, before.pid)
    assert.equal(after.prepared?.pid, p.pid, 'the prepared QEMU still waits')
    assert.equal(after.prepared?.state, 'waiting')
    assert.ok(isAlive(p.pid))
    assert.ok(existsSync(join(dir, `vm1.${p.generation}.qmp`)), 'its QMP socket is still in place')
  })

  test('prepare --cancel kills the prepared QEMU', async () => {
    const p = (await status()).prepared
    assert.ok(p !== undefined)
    const r = await cli('prepare', 'vm1', '--cancel')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`prepared destination QEMU pid ${p.pid} killed`))
    assert.ok(await waitGone(p.pid))
    assert.equal((await status()).prepared, undefined)
    const none = await cli('prepare', 'vm1', '--cancel')
    assert.equal(none.code, 0, none.stderr)
    assert.match(none.stdout, /no prepared destination/)
  })

  test('a keeper handoff kills the prepared QEMU instead of handing it over, and logs that', async () => {
    const before = await status()
    const p = await prepare()
    const r = await cli('upgrade-keeper', 'vm1')
    assert.equal(r.code, 0, r.stderr + r.stdout)
    assert.ok(await waitGone(p.pid), 'the prepared QEMU was killed')
    const after = await status()
    assert.notEqual(after.keeperPid, before.keeperPid)
    assert.equal(after.pid, before.pid, 'the guest kept running on the same QEMU')
    assert.equal(after.prepared, undefined)
    assert.match(readFileSync(join(dir, 'vm1.keeper.log'), 'utf8'), new RegExp(`killed the prepared destination QEMU pid ${p.pid}`))
  })

  test('stop kills a prepared QEMU along with the VM', async () => {
    const s = await status()
    const p = await prepare()
    const r = await cli('stop', 'vm1')
    assert.equal(r.code, 0, r.stderr)
    assert.ok(await waitGone(p.pid), 'the prepared QEMU exited')
    assert.ok(await waitGone(s.pid))
    assert.ok(await waitGone(s.keeperPid))
  })
})
