/**
 * The keeper: the long-lived process that holds a VM's RAM region, owns its current QEMU, and
 * serves the control socket that `pagegift qemu upgrade|status|stop` talk to. It runs until the VM
 * stops: by `stop`, by SIGTERM or SIGINT, or by QEMU exiting on its own.
 */
import type { Server } from 'node:net'
import { rmSync } from 'node:fs'
import { request, serveControl, type ControlRequest } from './control.ts'
import { QemuError, isQemuError } from './errors.ts'
import { ensureDir, vmPaths } from './paths.ts'
import { Vm, type VmConfig, type VmStatus } from './vm.ts'

export interface Keeper {
  vm: Vm
  /** Resolves with the keeper's exit code once the VM has stopped and the socket is closed. */
  done: Promise<number>
}

/** Starts the VM and its control socket; refuses if a keeper for this name already answers. */
export async function startKeeper (config: VmConfig, log: (line: string) => void): Promise<Keeper> {
  const paths = vmPaths(config.dir, config.name)
  ensureDir(paths.dir)
  await refuseIfRunning(paths.control, config.name)
  const vm = await Vm.start(config)
  log(`${vm.name}: running on QEMU pid ${vm.pid} (${vm.accel}); ${vm.accelNote}`)
  log(`${vm.name}: control socket ${paths.control}, console log ${paths.console}`)

  let finish: (code: number) => void = () => {}
  const done = new Promise<number>((resolve) => { finish = resolve })
  let server: Server | undefined
  const shutdown = (code: number): void => {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    server?.close()
    rmSync(paths.control, { force: true })
    finish(code)
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${vm.name}: ${signal}, stopping the VM`)
    vm.stop().catch(() => vm.kill()).finally(() => shutdown(0))
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  vm.onExit(() => {
    log(`${vm.name}: QEMU pid ${vm.pid} exited on its own; the keeper stops`)
    shutdown(1)
  })

  const handle = async (req: ControlRequest): Promise<unknown> => {
    if (req.op === 'status') return await vm.status()
    if (req.op === 'upgrade') {
      const record = await vm.upgrade({ qemu: req.qemu, timeoutMs: req.timeoutMs })
        .catch((err: Error) => { log(`${vm.name}: upgrade failed: ${err.message}`); throw err })
      log(`${vm.name}: upgraded, QEMU pid ${record.oldPid} -> ${record.newPid}, downtime ${record.downtimeMs} ms, ${record.bytesTransferred} bytes`)
      return record
    }
    await vm.stop()
    log(`${vm.name}: stopped`)
    // Reply first, then close the socket and let the keeper exit.
    setImmediate(() => shutdown(0))
    return { stopped: true }
  }
  try {
    server = await serveControl(paths.control, handle)
  } catch (err) {
    vm.kill()
    throw err
  }
  return { vm, done }
}

async function refuseIfRunning (control: string, name: string): Promise<void> {
  try {
    const status = await request<VmStatus>(control, { op: 'status' }, 2000)
    throw new QemuError('ERR_QEMU_VM_EXISTS', `VM ${name} is already running (keeper pid ${status.keeperPid}, QEMU pid ${status.pid})`)
  } catch (err) {
    if (isQemuError(err, 'ERR_QEMU_VM_NOT_FOUND')) return
    throw err
  }
}
