/**
 * End to end through the CLI: `pagegift qemu start --detach` boots a tiny guest (the Debian kernel
 * plus a busybox initramfs that counts on the serial console) under TCG, `pagegift qemu upgrade`
 * moves it to a new QEMU process twice, and the guest's counter carries on without a restart.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { buildGuest, type Guest } from '../tools/guest/build.ts'
import { countsAreContiguous, isAlive, killQuietly, lastCount, qemuSkipReason, readConsole, waitForCount, waitGone } from '../tools/guest/qemu.ts'
import type { UpgradeRecord, VmStatus } from '../src/qemu/vm.ts'

const execFileAsync = promisify(execFile)
const skip = qemuSkipReason()
const bin = join(import.meta.dirname, '..', 'bin', 'pagegift.js')
const fakeQemu = join(import.meta.dirname, 'fixtures', 'guest', 'fake-qemu.sh')
const MiB = 1024 * 1024

describe('pagegift qemu: live update of a running guest', { skip, timeout: 180_000 }, () => {
  let guest: Guest
  let dir: string
  const seenPids = new Set<number>()

  async function cli (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
    try {
      const { stdout, stderr } = await execFileAsync(process.execPath, [bin, 'qemu', ...args], { env: { ...process.env, PAGEGIFT_QEMU_DIR: dir }, timeout: 90_000 })
      return { code: 0, stdout, stderr }
    } catch (err) {
      const e = err as { code?: number, stdout?: string, stderr?: string }
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
    }
  }

  async function status (): Promise<VmStatus> {
    const r = await cli('status', 'vm1', '--json')
    assert.equal(r.code, 0, r.stderr)
    const s = JSON.parse(r.stdout) as VmStatus
    seenPids.add(s.pid).add(s.keeperPid)
    return s
  }

  const consolePath = (): string => join(dir, 'vm1.console.log')

  before(async () => {
    guest = buildGuest()
    dir = mkdtempSync(join(tmpdir(), 'pagegift-qemu-'))
    const r = await cli('start', '--name', 'vm1', '--memory', '256M', '--accel', 'auto', '--detach', '--',
      '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', guest.append())
    assert.equal(r.code, 0, r.stderr + r.stdout)
    await status()
    await waitForCount(consolePath(), 3)
  })

  after(async () => {
    // Whatever happened, leave no keeper or QEMU behind.
    for (const pid of seenPids) killQuietly(pid, 'SIGKILL')
    for (const pid of seenPids) await waitGone(pid)
    rmSync(dir, { recursive: true, force: true })
    rmSync(guest.dir, { recursive: true, force: true })
  })

  test('status reports the running VM', async () => {
    const s = await status()
    assert.equal(s.state, 'running')
    assert.equal(s.generation, 1)
    assert.equal(s.memoryBytes, 256 * MiB)
    assert.ok(isAlive(s.pid))
  })

  test('a second start of the same VM is refused', async () => {
    const r = await cli('start', '--name', 'vm1', '--memory', '256M', '--', '-kernel', guest.kernel)
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /ERR_QEMU_VM_EXISTS/)
  })

  test('two upgrades move the guest to new QEMU processes without a restart or RAM copy', async () => {
    for (let round = 1; round <= 2; round++) {
      const before = await status()
      const countBefore = await waitForCount(consolePath(), lastCount(consolePath()) + 1)
      const r = await cli('upgrade', 'vm1', '--json')
      assert.equal(r.code, 0, r.stderr)
      const u = JSON.parse(r.stdout) as UpgradeRecord
      seenPids.add(u.newPid)
      assert.equal(u.oldPid, before.pid)
      assert.notEqual(u.newPid, u.oldPid, 'the QEMU pid changed')
      assert.ok(u.bytesTransferred > 0 && u.bytesTransferred < 1_000_000, `${u.bytesTransferred} bytes crossed the migration socket`)
      assert.ok(u.downtimeMs >= 0 && u.stopResumeGapMs >= 0 && u.totalMs > 0)
      const after = await status()
      assert.equal(after.pid, u.newPid)
      assert.equal(after.generation, before.generation + 1)
      assert.equal(after.state, 'running')
      assert.ok(await waitGone(u.oldPid), 'the old QEMU has exited')
      // The counter goes on from where it was on the new process.
      await waitForCount(consolePath(), countBefore + 3)
    }
    const { inits, counts } = readConsole(consolePath())
    assert.equal(inits, 1, 'init ran once: the guest never restarted')
    assert.ok(countsAreContiguous(counts), 'no counter value was skipped or repeated')
    assert.equal((await status()).upgrades.length, 2)
  })

  test('the keeper hands the VM to a new keeper process, and QEMU keeps running', async () => {
    const before = await status()
    const r = await cli('upgrade-keeper', 'vm1')
    assert.equal(r.code, 0, r.stderr + r.stdout)
    const after = await status()
    assert.notEqual(after.keeperPid, before.keeperPid, 'a new keeper took over')
    assert.equal(after.pid, before.pid, 'the same QEMU runs the guest')
    assert.equal(after.generation, before.generation)
    assert.equal(after.upgrades.length, before.upgrades.length, 'the upgrade history came along')
    assert.ok(await waitGone(before.keeperPid), 'the old keeper exited')
    // The new keeper holds the same RAM, so it can live-update QEMU again.
    const u = await cli('upgrade', 'vm1', '--json')
    assert.equal(u.code, 0, u.stderr)
    seenPids.add((JSON.parse(u.stdout) as UpgradeRecord).newPid)
    await waitForCount(consolePath(), lastCount(consolePath()) + 2)
    assert.equal(readConsole(consolePath()).inits, 1)
  })

  test('a new keeper that dies mid-handoff leaves the old keeper in charge', async () => {
    const before = await status()
    const dying = join(import.meta.dirname, 'fixtures', 'guest', 'dying-keeper.ts')
    const r = await execFileAsync(process.execPath, ['--import', 'tsx', dying, join(dir, 'vm1.handoff')], { timeout: 30_000 })
      .then(() => ({ signal: null }), (err: { signal?: string | null }) => ({ signal: err.signal ?? null }))
    assert.equal(r.signal, 'SIGKILL', 'the successor died at the injected fault')
    const after = await status()
    assert.equal(after.keeperPid, before.keeperPid)
    assert.equal(after.pid, before.pid)
    assert.equal(after.state, 'running')
    // The old keeper took QMP back: it can still live-update QEMU.
    const u = await cli('upgrade', 'vm1', '--json')
    assert.equal(u.code, 0, u.stderr)
    seenPids.add((JSON.parse(u.stdout) as UpgradeRecord).newPid)
  })

  test('an upgrade whose new QEMU cannot start fails, and the guest keeps running', async () => {
    const before = await status()
    const r = await cli('upgrade', 'vm1', '--qemu', fakeQemu)
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /ERR_QEMU_UPGRADE_FAILED/)
    assert.match(r.stderr, /rolled back/)
    const after = await status()
    assert.equal(after.pid, before.pid)
    assert.equal(after.state, 'running')
    const n = lastCount(consolePath())
    await waitForCount(consolePath(), n + 2)
  })

  test('stop quits QEMU and the keeper, and frees the name', async () => {
    const s = await status()
    const r = await cli('stop', 'vm1')
    assert.equal(r.code, 0, r.stderr)
    assert.ok(await waitGone(s.pid), 'QEMU exited')
    assert.ok(await waitGone(s.keeperPid), 'the keeper exited')
    const again = await cli('status', 'vm1')
    assert.notEqual(again.code, 0)
    assert.match(again.stderr, /ERR_QEMU_VM_NOT_FOUND/)
  })
})
