/**
 * What reaches QEMU's command line: a VM directory with a comma (QEMU's option separator) must
 * mean that very path and add no option; a user's own serial port must be the guest's first one.
 * Real QEMU under TCG.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { killQuietly, qemuSkipReason, waitGone } from '../tools/guest/qemu.ts'
import { qemuArgs, setsSerial } from '../src/qemu/process.ts'
import { QmpClient } from '../src/qemu/qmp.ts'
import { Vm } from '../src/qemu/vm.ts'

const skip = qemuSkipReason()
const MiB = 1024 * 1024

test('the serial options of the user are recognised, and never combined with the keeper\'s console log', () => {
  assert.ok(setsSerial(['-kernel', 'k', '-serial', 'file:/x']))
  assert.ok(setsSerial(['-device', 'isa-serial,chardev=c']))
  assert.ok(setsSerial(['-device', 'driver=isa-serial,chardev=c']))
  assert.ok(!setsSerial(['-device', 'virtio-serial-pci', '-append', 'console=ttyS0']))
  const base = { binary: 'qemu', ram: { bytes: 64 * MiB }, qmpPath: '/d/q', logFd: 2, accel: 'tcg' as const }
  assert.throws(() => qemuArgs({ ...base, consolePath: '/d/c', extraArgs: ['-serial', 'stdio'] }), { name: 'TypeError', message: /serial/ })
  const args = qemuArgs({ ...base, extraArgs: ['-serial', 'stdio'] })
  assert.equal(args.filter((a) => a === '-serial').length, 1)
  assert.ok(!args.some((a) => a.includes('pagegift-console')))
})

describe('QEMU command line', { skip, timeout: 120_000 }, () => {
  let base: string
  const pids = new Set<number>()

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'pg-qargs-'))
  })

  after(async () => {
    for (const pid of pids) killQuietly(pid)
    for (const pid of pids) await waitGone(pid)
    rmSync(base, { recursive: true, force: true })
  })

  /** The files a QEMU process has open, as it named them. */
  const openFiles = (pid: number): string[] => readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`) } catch { return '' } })

  // No guest kernel: the firmware runs and finds nothing to boot, which is all these checks need.
  test('a VM directory with a comma is that very directory to QEMU, through start and upgrade, and injects no option', async () => {
    const injected = join(base, 'injected')
    mkdirSync(injected)
    // Unescaped, QEMU would read `path=BASE/vm` and then `logfile=BASE/injected/...`: a file of the path's choosing.
    const dir = join(base, `vm,logfile=${injected}`)
    const vm = await Vm.start({ name: 'a', memoryBytes: 64 * MiB, accel: 'tcg', dir })
    try {
      pids.add(vm.pid)
      const consoleLog = join(dir, 'a.console.log')
      assert.equal(vm.consoleLog, consoleLog)
      assert.ok(openFiles(vm.pid).includes(consoleLog), `QEMU has the console log open at its real path: ${openFiles(vm.pid).join(' ')}`)
      assert.equal((await vm.status()).state, 'running', 'QMP answers at the socket path with the comma')
      await vm.upgrade({ timeoutMs: 30_000 }) // The migration sockets live there too.
      pids.add(vm.pid)
      assert.ok(openFiles(vm.pid).includes(consoleLog))
      assert.equal((await vm.status()).state, 'running')
      assert.deepEqual(readdirSync(injected), [], 'no injected logfile option reached QEMU')
      assert.ok(!existsSync(join(base, 'vm')), 'QEMU never saw the path cut at the comma')
    } finally {
      await vm.stop().catch(() => vm.kill())
    }
  })

  test('a user\'s -serial is the guest\'s first serial port (COM1, ttyS0), and the keeper then keeps no console log', async () => {
    const dir = join(base, 'serial')
    const userQmp = join(base, 'user.{generation}.qmp')
    const vm = await Vm.start({
      name: 'b', memoryBytes: 64 * MiB, accel: 'tcg', dir,
      extraArgs: ['-chardev', `file,id=mine,path=${join(base, 'user-serial.log')},append=on`, '-serial', 'chardev:mine', '-qmp', `unix:${userQmp},server=on,wait=off`],
    })
    pids.add(vm.pid)
    const qmp = await QmpClient.connect(userQmp.replace('{generation}', '1'), { timeoutMs: 10_000 })
    try {
      assert.equal(vm.consoleLog, null)
      assert.equal((await vm.status()).consoleLog, null)
      assert.ok(!existsSync(join(dir, 'b.console.log')))
      const qtree = await qmp.execute<string>('human-monitor-command', { 'command-line': 'info qtree' })
      // One serial port, COM1 (index 0, the guest's ttyS0), and the user's chardev is what a device has open.
      const ports = qtree.split('dev: ').filter((d) => d.startsWith('isa-serial')).map((d) => /index = (\d+)/.exec(d)?.[1])
      assert.deepEqual(ports, ['0'], qtree)
      const chardevs = await qmp.execute<{ label: string, 'frontend-open': boolean }[]>('query-chardev')
      assert.equal(chardevs.find((c) => c.label === 'mine')?.['frontend-open'], true, JSON.stringify(chardevs))
      assert.ok(!chardevs.some((c) => c.label === 'pagegift-console'))
    } finally {
      qmp.close()
      await vm.stop().catch(() => vm.kill())
    }
  })
})
