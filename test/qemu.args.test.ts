/**
 * What reaches QEMU's command line: a VM directory with a comma (QEMU's option separator) must
 * mean that very path and add no option. Real QEMU under TCG.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { killQuietly, qemuSkipReason, waitGone } from '../tools/guest/qemu.ts'
import { Vm } from '../src/qemu/vm.ts'

const skip = qemuSkipReason()
const MiB = 1024 * 1024

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
})
