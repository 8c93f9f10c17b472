/**
 * A VM whose RAM is giftable memory held by this process (its keeper). The keeper never touches
 * the guest RAM; it only holds the sealed memfd so that every QEMU generation can map the same
 * pages, and it runs one live update at a time.
 */
import { closeSync, fstatSync, rmSync, statSync } from 'node:fs'
import { alloc, fdOf, release } from '../pages.ts'
import { QemuError } from './errors.ts'
import { findQemu, kvmUsable, DEFAULT_QEMU, type QemuBinary } from './host.ts'
import { liveUpdate, type UpgradePhase, type UpgradeReport } from './liveupdate.ts'
import { vmPaths, ensureDir, type VmPaths } from './paths.ts'
import { prepareDestination } from './prepare.ts'
import { PreparedSlot, type Prepared, type PreparedStatus } from './prepared-slot.ts'
import { attachQemu, launchQemu, openLog, setsSerial, type QemuProcess } from './process.ts'

export interface VmConfig {
  name: string
  memoryBytes: number
  /** QEMU binary name or path (default qemu-system-x86_64). */
  qemu?: string
  /** 'auto' uses KVM when it really works, else TCG with a note. */
  accel?: 'auto' | 'kvm' | 'tcg'
  machine?: string
  /** Directory for the VM's sockets and logs. */
  dir: string
  /**
   * Further QEMU arguments (kernel, disks, ...), used for every generation. `{generation}` in them
   * becomes the generation number: a QEMU unlinks its listening sockets when it exits, so a socket
   * path shared by two generations would vanish when the old one quits.
   */
  extraArgs?: string[]
}

export interface UpgradeRecord extends UpgradeReport { at: string, qemu: string, qemuVersion: string }

export type { PreparedStatus }

export interface VmStatus {
  name: string
  /** QEMU's run state, such as 'running' or 'paused', or 'exited'. */
  state: string
  pid: number
  generation: number
  qemu: string
  qemuVersion: string
  accel: 'kvm' | 'tcg'
  /** Why that accelerator, for example why KVM is not used. */
  accelNote: string
  memoryBytes: number
  keeperPid: number
  startedAt: string
  /** The keeper's serial console log, or null when the VM's own arguments set the serial ports. */
  consoleLog: string | null
  upgrades: UpgradeRecord[]
  /** The prepared destination, if there is one. */
  prepared?: PreparedStatus
}

/** What a keeper hands to its successor besides the RAM region: enough to take charge of the VM. */
export interface VmHandoffMeta {
  config: VmConfig
  pid: number
  generation: number
  binary: QemuBinary
  accel: 'kvm' | 'tcg'
  accelNote: string
  startedAt: string
  upgrades: UpgradeRecord[]
}

export interface UpgradeOptions { qemu?: string, timeoutMs?: number, onPhase?: (phase: UpgradePhase, dest: QemuProcess) => Promise<void> | void }

export interface PrepareOptions { qemu?: string, timeoutMs?: number }

export class Vm {
  readonly name: string
  readonly paths: VmPaths
  /** `paths.console`, or null when the VM's own arguments (`-serial`, an isa-serial device) set the serial ports. */
  readonly consoleLog: string | null
  readonly accel: 'kvm' | 'tcg'
  /** Why the accelerator was chosen, for example why KVM is not used. */
  readonly accelNote: string
  #config: VmConfig
  #ram: ArrayBuffer
  #ramFd: number
  #logFd: number
  #qemu: QemuProcess
  #binary: QemuBinary
  #generation = 1
  #startedAt = new Date().toISOString()
  #upgrades: UpgradeRecord[] = []
  readonly #prepared: PreparedSlot
  #busy = false
  #stopped = false
  #onExit: ((vm: Vm) => void) | undefined

  #handingOff = false

  private constructor (config: VmConfig, ram: ArrayBuffer, ramFd: number, logFd: number, qemu: QemuProcess, binary: QemuBinary, accel: { accel: 'kvm' | 'tcg', note: string }) {
    this.name = config.name
    this.paths = vmPaths(config.dir, config.name)
    this.consoleLog = consoleLogOf(config, this.paths)
    this.#config = config
    this.#ram = ram
    this.#ramFd = ramFd
    this.#logFd = logFd
    this.#qemu = qemu
    this.#binary = binary
    this.accel = accel.accel
    this.accelNote = accel.note
    this.#prepared = new PreparedSlot(config.name)
    this.#watch(qemu)
  }

  /** Allocates the RAM region and starts the first QEMU on it. */
  static async start (config: VmConfig): Promise<Vm> {
    const binary = await findQemu(config.qemu ?? DEFAULT_QEMU)
    const accel = chooseAccel(config.accel ?? 'auto')
    const paths = vmPaths(config.dir, config.name)
    ensureDir(paths.dir)
    const ram = alloc(config.memoryBytes, { name: `pagegift-qemu-${config.name}` })
    const ramFd = fdOf(ram)
    const logFd = openLog(paths.qemuLog)
    try {
      const qemu = await launchQemu({
        binary: binary.path, ram: { bytes: config.memoryBytes, fd: ramFd }, qmpPath: paths.qmp(1), consolePath: consoleLogOf(config, paths) ?? undefined,
        logFd, accel: accel.accel, machine: config.machine, extraArgs: argsFor(config, 1),
      })
      return new Vm(config, ram, ramFd, logFd, qemu, binary, accel)
    } catch (err) {
      closeSync(ramFd)
      closeSync(logFd)
      release(ram)
      throw err
    }
  }

  /**
   * Takes charge of a VM that a previous keeper handed over: `ram` is the inherited region. It
   * checks that the region is the very memfd QEMU maps, since a copy would give the next QEMU
   * generation different RAM from the one the guest runs on.
   */
  static async adopt (ram: ArrayBuffer, meta: VmHandoffMeta): Promise<Vm> {
    const paths = vmPaths(meta.config.dir, meta.config.name)
    const ramFd = fdOf(ram)
    let logFd: number | undefined
    try {
      const qemuRam = statSync(`/proc/${meta.pid}/fd/3`)
      if (qemuRam.ino !== fstatSync(ramFd).ino || qemuRam.dev !== fstatSync(ramFd).dev) {
        throw new QemuError('ERR_QEMU_CONTROL', `the inherited RAM region is not the memfd QEMU pid ${meta.pid} maps`)
      }
      logFd = openLog(paths.qemuLog)
      const qemu = await attachQemu(meta.pid, paths.qmp(meta.generation))
      const vm = new Vm(meta.config, ram, ramFd, logFd, qemu, meta.binary, { accel: meta.accel, note: meta.accelNote })
      vm.#generation = meta.generation
      vm.#startedAt = meta.startedAt
      vm.#upgrades = [...meta.upgrades]
      return vm
    } catch (err) {
      closeSync(ramFd)
      if (logFd !== undefined) closeSync(logFd)
      release(ram)
      throw err
    }
  }

  get pid (): number { return this.#qemu.pid }
  /** The guest RAM region; only handed to a successor keeper, never read or written here. */
  get ram (): ArrayBuffer { return this.#ram }
  get generation (): number { return this.#generation }
  get stopped (): boolean { return this.#stopped }
  /** The pid of the prepared destination QEMU, if there is one. */
  get preparedPid (): number | undefined { return this.#prepared.held?.dest.vm.pid }
  /** True between beginHandoff() and its commit or abort. */
  get handingOff (): boolean { return this.#handingOff }

  /** Called once if the current QEMU exits on its own (guest power-off or a crash). */
  onExit (fn: (vm: Vm) => void): void { this.#onExit = fn }

  async status (): Promise<VmStatus> {
    let state = 'exited'
    if (!this.#stopped) {
      state = await this.#qemu.qmp.execute<{ status: string }>('query-status', undefined, { timeoutMs: 2000 })
        .then((s) => s.status, (err: Error) => `unknown (${err.message})`)
    }
    return {
      name: this.name, state, pid: this.#qemu.pid, generation: this.#generation, qemu: this.#binary.path,
      qemuVersion: this.#binary.versionText, accel: this.accel, accelNote: this.accelNote, memoryBytes: this.#config.memoryBytes, keeperPid: process.pid,
      startedAt: this.#startedAt, consoleLog: this.consoleLog, upgrades: [...this.#upgrades],
      ...(this.#prepared.held !== undefined ? { prepared: this.#prepared.status() } : {}),
    }
  }

  /**
   * Starts the next QEMU (optionally another binary) on the same RAM and leaves it waiting for the
   * migration, so that the next upgrade is only the switch. Preparing again with the same binary
   * returns the waiting one; a different binary is refused until it is cancelled. One that died
   * is replaced.
   */
  async prepare (o: PrepareOptions = {}): Promise<PreparedStatus & { reused: boolean }> {
    this.#begin('prepared')
    try {
      const binary = await findQemu(o.qemu ?? this.#binary.path)
      if (this.#prepared.waiting) {
        this.#prepared.checkBinary(binary.path)
        return { ...this.#prepared.status() as PreparedStatus, reused: true }
      }
      await this.#prepared.drop()
      const next = this.#generation + 1
      const dest = await prepareDestination(async () => await this.#launch(binary.path, next), { socketBase: this.paths.migration(next), timeoutMs: o.timeoutMs, source: this.#qemu })
      this.#prepared.hold({ dest, binary, generation: next })
      return { ...this.#prepared.status() as PreparedStatus, reused: false }
    } finally {
      this.#busy = false
    }
  }

  /** Kills the prepared destination; returns what it was, or undefined if there was none. */
  async cancelPrepared (): Promise<PreparedStatus | undefined> {
    this.#begin('cancelled')
    try {
      return await this.#prepared.drop()
    } finally {
      this.#busy = false
    }
  }

  /**
   * Moves the guest to a new QEMU process (optionally another binary) on the same RAM. A prepared
   * destination is used if there is one; a `qemu` other than the prepared one's is refused.
   */
  async upgrade (o: UpgradeOptions = {}): Promise<UpgradeRecord> {
    this.#begin('upgraded')
    let prepared: Prepared | undefined
    try {
      if (o.qemu !== undefined) this.#prepared.checkBinary(o.qemu)
      // From here the update owns the prepared destination: it becomes the VM's QEMU or is killed.
      prepared = this.#prepared.take()
      const binary = prepared?.binary ?? await findQemu(o.qemu ?? this.#binary.path)
      const next = this.#generation + 1
      const { vm, report } = await liveUpdate(this.#qemu, {
        socketBase: this.paths.migration(next),
        timeoutMs: o.timeoutMs,
        onPhase: o.onPhase,
        prepared: prepared?.dest,
        launchDestination: async () => await this.#launch(binary.path, next),
      })
      rmSync(this.paths.qmp(this.#generation), { force: true })
      this.#qemu = vm
      this.#binary = binary
      this.#generation = next
      this.#watch(vm)
      const record: UpgradeRecord = { ...report, at: new Date().toISOString(), qemu: binary.path, qemuVersion: binary.versionText }
      this.#upgrades.push(record)
      return record
    } catch (err) {
      // An update refused before it began leaves a prepared destination waiting, and it stays prepared.
      if (prepared !== undefined) this.#prepared.giveBack(prepared)
      if (this.#prepared.held === undefined) rmSync(this.paths.qmp(this.#generation + 1), { force: true })
      throw err
    } finally {
      this.#busy = false
      // The exit watcher ignores exits during an update; a source that died meanwhile is noticed here.
      if (this.#qemu.exitStatus !== undefined && !this.#stopped) {
        this.#cleanup()
        this.#onExit?.(this)
      }
    }
  }

  /** Quits QEMU (killing it if it does not quit in time) and frees the RAM. */
  async stop (timeoutMs = 5000): Promise<void> {
    if (this.#busy) throw new QemuError('ERR_QEMU_BUSY', `VM ${this.name} is being upgraded; stop it afterwards`)
    this.#busy = true
    try {
      await this.#prepared.drop()
      await this.#qemu.quit(timeoutMs)
      this.#cleanup()
    } finally {
      this.#busy = false
    }
  }

  /**
   * Prepares to hand the VM to a successor keeper: no upgrade may run, and the QMP connection is
   * closed because QEMU serves one QMP client at a time. A prepared destination is killed, not
   * handed over: it is this keeper's child, and a successor can prepare a new one in a few tens of
   * ms. Returns the metadata to hand over.
   */
  beginHandoff (): VmHandoffMeta {
    if (this.#stopped) throw new QemuError('ERR_QEMU_EXITED', `VM ${this.name} is not running`)
    if (this.#busy) throw new QemuError('ERR_QEMU_BUSY', `VM ${this.name} is being upgraded or stopped; hand over afterwards`)
    this.#busy = true
    this.#handingOff = true
    this.#prepared.kill()
    this.#qemu.qmp.close()
    return {
      config: this.#config, pid: this.#qemu.pid, generation: this.#generation, binary: this.#binary, accel: this.accel,
      accelNote: this.accelNote, startedAt: this.#startedAt, upgrades: [...this.#upgrades],
    }
  }

  /** The handoff failed before its commit: take QMP back and carry on as the keeper. */
  async abortHandoff (): Promise<void> {
    try {
      await this.#qemu.reconnect()
    } finally {
      this.#busy = false
      this.#handingOff = false
    }
  }

  /** The successor has committed: let go of everything without touching QEMU. */
  finishHandoff (): void {
    if (this.#stopped) return
    this.#stopped = true
    closeSync(this.#ramFd)
    closeSync(this.#logFd)
    release(this.#ram)
  }

  /** Kills QEMU at once; for a keeper that is itself being killed. */
  kill (): void {
    this.#prepared.kill()
    if (this.#stopped) return
    this.#qemu.kill('SIGKILL')
    this.#cleanup()
  }

  #watch (qemu: QemuProcess): void {
    void qemu.exited.then(() => {
      // An exit of a QEMU that is no longer current (an upgraded-away source) is expected.
      if (qemu !== this.#qemu || this.#stopped || this.#busy || this.#handingOff) return
      this.#cleanup()
      this.#onExit?.(this)
    })
  }

  #begin (verb: string): void {
    if (this.#stopped) throw new QemuError('ERR_QEMU_EXITED', `VM ${this.name} is not running`)
    if (this.#busy) throw new QemuError('ERR_QEMU_BUSY', `VM ${this.name} cannot be ${verb} now: an upgrade, prepare, stop or keeper handoff is running`)
    this.#busy = true
  }

  #launch (binary: string, generation: number): Promise<QemuProcess> {
    return launchQemu({
      binary, ram: { bytes: this.#config.memoryBytes, fd: this.#ramFd }, qmpPath: this.paths.qmp(generation),
      consolePath: this.consoleLog ?? undefined, logFd: this.#logFd, accel: this.accel, machine: this.#config.machine,
      extraArgs: argsFor(this.#config, generation), incoming: true,
    })
  }

  #cleanup (): void {
    this.#prepared.kill()
    if (this.#stopped) return
    this.#stopped = true
    this.#qemu.qmp.close()
    rmSync(this.paths.qmp(this.#generation), { force: true })
    closeSync(this.#ramFd)
    closeSync(this.#logFd)
    release(this.#ram)
  }
}

/** The user's serial options win: the keeper logs the console only when they set none. */
function consoleLogOf (config: VmConfig, paths: VmPaths): string | null {
  return setsSerial(config.extraArgs ?? []) ? null : paths.console
}

function argsFor (config: VmConfig, generation: number): string[] {
  return (config.extraArgs ?? []).map((a) => a.replaceAll('{generation}', String(generation)))
}

function chooseAccel (wanted: 'auto' | 'kvm' | 'tcg'): { accel: 'kvm' | 'tcg', note: string } {
  if (wanted === 'tcg') return { accel: 'tcg', note: 'TCG as requested' }
  const kvm = kvmUsable()
  if (kvm.usable) return { accel: 'kvm', note: kvm.reason }
  if (wanted === 'kvm') throw new QemuError('ERR_QEMU_START_FAILED', `KVM requested but not usable: ${kvm.reason}`)
  return { accel: 'tcg', note: `KVM unavailable (${kvm.reason}); using TCG, which is much slower` }
}
