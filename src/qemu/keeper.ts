/**
 * The keeper: the long-lived process that holds a VM's RAM region, owns its current QEMU, and
 * serves the control socket that `pagegift qemu upgrade|status|stop` talk to. It runs until the VM
 * stops: by `stop`, by SIGTERM or SIGINT, or by QEMU exiting on its own.
 *
 * The keeper is itself a pagegift handoff service, so the keeper can be upgraded too: a new keeper
 * joins the handoff socket and inherits the RAM region (the same sealed memfd, never copied) and the
 * VM's metadata, then takes over QMP and the control socket path. QEMU keeps running through it,
 * untouched. If the new keeper fails before the commit, the old one carries on.
 *
 * The control socket is not handed over as a listening socket: closing a libuv pipe server unlinks
 * its path, so the successor binds a fresh socket at the path after the commit instead, and control
 * clients retry across that short gap.
 */
import type { Server } from 'node:net'
import { rmSync } from 'node:fs'
import { join, type Generation } from '../handoff/index.ts'
import { request, serveControl, type ControlRequest } from './control.ts'
import { QemuError, isQemuError } from './errors.ts'
import { ensureDir, vmPaths } from './paths.ts'
import { Vm, type PreparedStatus, type VmConfig, type VmHandoffMeta, type VmStatus } from './vm.ts'

export const KEEPER_VERSION = 'pagegift-qemu-keeper/1'

/** The reply to a 'prepare' request: the prepared destination, or what `cancel` dropped (null: nothing). */
export type PrepareReply = { prepared: PreparedStatus & { reused: boolean } } | { cancelled: PreparedStatus | null }

export interface Keeper {
  vm: Vm
  /** Resolves with the keeper's exit code once the VM has stopped and the sockets are closed. */
  done: Promise<number>
}

/**
 * Starts a keeper for `name` in `dir`. With a `config` it starts a new VM (refused if one runs);
 * without one it takes over the running VM from its current keeper.
 */
export async function startKeeper (target: { dir: string, name: string }, config: VmConfig | null, log: (line: string) => void): Promise<Keeper> {
  const paths = vmPaths(target.dir, target.name)
  ensureDir(paths.dir)
  if (config !== null) await refuseIfRunning(paths.control, target.name)
  const gen = await join(paths.handoff, { version: KEEPER_VERSION, exitOnHandoff: true })
  let resolveVm: (vm: Vm) => void = () => {}
  const vmReady = new Promise<Vm>((resolve) => { resolveVm = resolve })
  let server: Server | undefined
  let vm: Vm
  const handedOver = { done: false }
  try {
    const handle = controlHandler(vmReady, handedOver, log, () => setImmediate(() => shutdown(0)))
    wireHandoff(gen, vmReady, log)
    if (gen.inherited === null) {
      if (config === null) throw new QemuError('ERR_QEMU_VM_NOT_FOUND', `no keeper of VM ${target.name} to take over at ${paths.handoff}`)
      vm = await Vm.start(config)
      server = await serveControl(paths.control, handle)
      await gen.ready()
    } else {
      // Refusing before READY makes the running keeper resume, so a plain `start` never takes a VM over.
      if (config !== null) throw new QemuError('ERR_QEMU_VM_EXISTS', `VM ${target.name} is already running (keeper pid ${gen.inherited.from.pid})`)
      const meta = gen.inherited.meta as VmHandoffMeta
      const ram = gen.inherited.regions.ram
      if (ram === undefined || meta?.config?.name !== target.name) throw new QemuError('ERR_QEMU_CONTROL', `the keeper at ${paths.handoff} handed over something other than VM ${target.name}`)
      await gen.ready()
      server = await serveControl(paths.control, handle)
      vm = await Vm.adopt(ram, meta)
      log(`${vm.name}: took over from keeper pid ${gen.inherited.from.pid} (keeper generation ${gen.generation})`)
    }
  } catch (err) {
    server?.close()
    await gen.close().catch(() => {})
    throw err
  }
  resolveVm(vm)
  log(`${vm.name}: running on QEMU pid ${vm.pid} (${vm.accel}); ${vm.accelNote}`)
  log(`${vm.name}: control socket ${paths.control}, console log ${vm.consoleLog ?? 'none (the VM\'s own serial options)'}`)

  let finish: (code: number) => void = () => {}
  const done = new Promise<number>((resolve) => { finish = resolve })
  const shutdown = (code: number): void => {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    server?.close()
    rmSync(paths.control, { force: true })
    void gen.close().catch(() => {}).finally(() => finish(code))
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${vm.name}: ${signal}, stopping the VM`)
    vm.stop().catch(() => vm.kill()).finally(() => shutdown(0))
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  gen.on('handedOff', (info) => {
    handedOver.done = true
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    vm.finishHandoff()
    log(`${vm.name}: handed over to keeper pid ${info.toPid}; this keeper exits, QEMU pid ${vm.pid} keeps running`)
  })
  vm.onExit(() => {
    log(`${vm.name}: QEMU pid ${vm.pid} exited on its own; the keeper stops`)
    shutdown(1)
  })
  return { vm, done }
}

/**
 * Answers control requests once the VM is ready; `stopped` runs after the reply to a stop. During
 * a keeper handoff a request waits for its outcome, and once this keeper has handed over it tells
 * the client to ask the new keeper.
 */
function controlHandler (vmReady: Promise<Vm>, handedOver: { done: boolean }, log: (line: string) => void, stopped: () => void): (req: ControlRequest) => Promise<unknown> {
  return async (req) => {
    const vm = await vmReady
    while (vm.handingOff && !handedOver.done) await new Promise((resolve) => setTimeout(resolve, 20))
    if (handedOver.done) throw new QemuError('ERR_QEMU_KEEPER_MOVED', `VM ${vm.name} has a new keeper; ask again`)
    if (req.op === 'status') return await vm.status()
    if (req.op === 'prepare') return await prepare(vm, req, log)
    if (req.op === 'upgrade') {
      const record = await vm.upgrade({ qemu: req.qemu, timeoutMs: req.timeoutMs })
        .catch((err: Error) => { log(`${vm.name}: upgrade failed: ${err.message}`); throw err })
      if (record.preparedFallback !== undefined) log(`${vm.name}: ${record.preparedFallback}`)
      log(`${vm.name}: upgraded to a ${record.destination} QEMU, pid ${record.oldPid} -> ${record.newPid}, downtime ${record.downtimeMs} ms, ` +
        `${record.totalMs.toFixed(1)} ms to guest running, ${record.bytesTransferred} bytes`)
      return record
    }
    await vm.stop()
    log(`${vm.name}: stopped`)
    stopped()
    return { stopped: true }
  }
}

/** Starts (or with `cancel`, drops) the prepared destination. */
async function prepare (vm: Vm, req: ControlRequest, log: (line: string) => void): Promise<PrepareReply> {
  if (req.cancel === true) {
    const cancelled = await vm.cancelPrepared()
    if (cancelled !== undefined) log(`${vm.name}: prepared destination QEMU pid ${cancelled.pid} cancelled`)
    return { cancelled: cancelled ?? null }
  }
  const prepared = await vm.prepare({ qemu: req.qemu, timeoutMs: req.timeoutMs })
    .catch((err: Error) => { log(`${vm.name}: prepare failed: ${err.message}`); throw err })
  if (!prepared.reused) log(`${vm.name}: prepared destination QEMU pid ${prepared.pid} (${prepared.qemu}) waits for the next upgrade`)
  return { prepared }
}

/** What this keeper hands to a successor keeper, and how it carries on if that fails. */
function wireHandoff (gen: Generation, vmReady: Promise<Vm>, log: (line: string) => void): void {
  gen.onHandoff(async (successor) => {
    const vm = await vmReady
    const prepared = vm.preparedPid
    const meta = vm.beginHandoff()
    if (prepared !== undefined) log(`${vm.name}: killed the prepared destination QEMU pid ${prepared}: it is not handed over; prepare again with the new keeper`)
    log(`${vm.name}: handing over to keeper pid ${successor.pid}`)
    return { regions: { ram: vm.ram }, meta }
  })
  gen.on('resumed', (err) => {
    log(`keeper handoff failed (${err.message}); this keeper carries on`)
    void vmReady.then(async (vm) => await vm.abortHandoff()).catch((e: Error) => log(`cannot take QMP back: ${e.message}`))
  })
  gen.on('error', (err) => log(`handoff: ${err.message}`))
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
