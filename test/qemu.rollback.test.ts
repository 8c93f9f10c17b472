/**
 * Rollback: faults injected at each phase of a live update, through the Vm API with this test as
 * the keeper. Whatever fails before the destination runs, the guest must keep running on the
 * source, and the next upgrade must succeed.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildGuest, type Guest } from '../tools/guest/build.ts'
import { isAlive, killQuietly, lastCount, qemuSkipReason, readConsole, countsAreContiguous, waitForCount, waitGone } from '../tools/guest/qemu.ts'
import { Vm } from '../src/qemu/vm.ts'
import { isQemuError } from '../src/qemu/errors.ts'
import type { UpgradePhase } from '../src/qemu/liveupdate.ts'
import type { QemuProcess } from '../src/qemu/process.ts'
import { QmpClient } from '../src/qemu/qmp.ts'

const skip = qemuSkipReason()

describe('live update rollback', { skip, timeout: 180_000 }, () => {
  let guest: Guest
  let dir: string
  let vm: Vm
  const pids = new Set<number>()
  let fdsBefore: string[]
  const openFds = (): string[] => readdirSync('/proc/self/fd')

  before(async () => {
    guest = buildGuest()
    dir = mkdtempSync(join(tmpdir(), 'pagegift-qemu-rb-'))
    fdsBefore = openFds()
    vm = await Vm.start({
      name: 'rb', memoryBytes: 128 * 1024 * 1024, accel: 'tcg', dir,
      // A second QMP monitor lets the test pause the guest as a user would; each generation has its own.
      extraArgs: ['-kernel', guest.kernel, '-initrd', guest.initrd, '-append', guest.append(), '-qmp', `unix:${join(dir, 'user.{generation}.qmp')},server=on,wait=off`],
    })
    pids.add(vm.pid)
    await waitForCount(vm.paths.console, 2)
  })

  after(async () => {
    if (vm !== undefined && !vm.stopped) await vm.stop().catch(() => vm.kill())
    for (const pid of pids) killQuietly(pid)
    for (const pid of pids) await waitGone(pid)
    rmSync(dir, { recursive: true, force: true })
    rmSync(guest.dir, { recursive: true, force: true })
  })

  /** Runs an upgrade whose `fault` fires at `phase`, and checks the guest stayed on the source. */
  async function failedUpgrade (phase: UpgradePhase, fault: (dest: QemuProcess) => void, reason: RegExp, timeoutMs = 20_000, running = true): Promise<void> {
    const sourcePid = vm.pid
    let destPid: number | undefined
    const err = await vm.upgrade({
      timeoutMs,
      onPhase: (p, dest) => {
        pids.add(dest.pid)
        if (p === phase) { destPid = dest.pid; fault(dest) }
      },
    }).then(() => undefined, (e: unknown) => e)
    assert.ok(isQemuError(err, 'ERR_QEMU_UPGRADE_FAILED'), `expected ERR_QEMU_UPGRADE_FAILED, got ${String(err)}`)
    assert.equal(err.rolledBack, true)
    assert.match(err.message, reason)
    assert.ok(destPid !== undefined, `the fault at ${phase} fired`)
    assert.ok(await waitGone(destPid), 'the destination QEMU is gone')
    assert.equal(vm.pid, sourcePid)
    assert.ok(isAlive(sourcePid))
    if (!running) return
    assert.equal((await vm.status()).state, 'running')
    await waitForCount(vm.paths.console, lastCount(vm.paths.console) + 2, 20_000)
  }

  const gone = /closed|exited|ECONNRESET|EPIPE|failed on the|migration failed/

  test('killing the destination right after it starts rolls back', async () => {
    await failedUpgrade('destination-started', (dest) => dest.kill('SIGKILL'), gone)
  })

  test('killing the destination mid-migration rolls back', async () => {
    await failedUpgrade('migration-started', (dest) => dest.kill('SIGKILL'), gone)
  })

  test('killing the destination after the state moved but before it runs rolls back', async () => {
    await failedUpgrade('migration-completed', (dest) => dest.kill('SIGKILL'), gone)
  })

  test('a prepared destination killed mid-migration rolls back, and is not kept as prepared', async () => {
    const prepared = await vm.prepare()
    pids.add(prepared.pid)
    await failedUpgrade('migration-started', (dest) => {
      assert.equal(dest.pid, prepared.pid, 'the update used the prepared QEMU')
      dest.kill('SIGKILL')
    }, gone)
    assert.equal((await vm.status()).prepared, undefined)
  })

  test('a destination that hangs mid-migration times out and rolls back', async () => {
    await failedUpgrade('migration-started', (dest) => dest.kill('SIGSTOP'), /within \d+ ms/, 3000)
  })

  test('a guest the user paused stays paused through an upgrade and a rollback', async () => {
    const userQmp = (): string => join(dir, `user.${vm.generation}.qmp`)
    const user = await QmpClient.connect(userQmp())
    await user.execute('stop')
    user.close()
    pids.add((await vm.upgrade()).newPid)
    assert.equal((await vm.status()).state, 'paused')
    const frozen = lastCount(vm.paths.console)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    assert.equal(lastCount(vm.paths.console), frozen, 'the guest did not run while paused')

    await failedUpgrade('migration-completed', (dest) => dest.kill('SIGKILL'), gone, 20_000, false)
    assert.equal((await vm.status()).state, 'postmigrate')
    // QEMU cannot migrate from postmigrate: the next update says so, and touches nothing.
    await assert.rejects(vm.upgrade(), (err: unknown) => isQemuError(err, 'ERR_QEMU_UPGRADE_FAILED') && /resume it/.test(err.message))
    assert.equal(lastCount(vm.paths.console), frozen)

    const again = await QmpClient.connect(userQmp())
    await again.execute('cont')
    again.close()
    await waitForCount(vm.paths.console, frozen + 2, 20_000)
  })

  test('after the failures, the next upgrade succeeds and the guest never restarted', async () => {
    const before = vm.pid
    const r = await vm.upgrade()
    pids.add(r.newPid)
    assert.notEqual(r.newPid, before)
    assert.equal(vm.pid, r.newPid)
    assert.ok(await waitGone(before))
    await waitForCount(vm.paths.console, lastCount(vm.paths.console) + 2, 20_000)
    const { inits, counts } = readConsole(vm.paths.console)
    assert.equal(inits, 1)
    assert.ok(countsAreContiguous(counts))
  })

  test('stopping the VM quits QEMU and closes every fd the keeper side opened', async () => {
    const pid = vm.pid
    await vm.stop()
    assert.ok(await waitGone(pid))
    // Sockets close asynchronously; give them a moment before counting.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const leaked = openFds().filter((fd) => !fdsBefore.includes(fd))
    assert.deepEqual(leaked, [], 'no fd left open by the VM, its QMP connections or the migration relays')
    assert.ok(openFds().length <= fdsBefore.length)
  })
})
