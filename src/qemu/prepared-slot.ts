/**
 * A VM's one slot for a prepared destination, owned by its keeper: what `status` shows of it, the
 * check that an upgrade or a second prepare asks for the same QEMU binary, and killing it on every
 * way out (cancel, stop, a keeper handoff, the VM's QEMU exiting).
 */
import { realpathSync } from 'node:fs'
import { QemuError } from './errors.ts'
import { resolveBinary, type QemuBinary } from './host.ts'
import { describeExit, discardPrepared, killPrepared, type PreparedDestination } from './prepare.ts'

/** A destination QEMU started ahead by `Vm.prepare()`, waiting for the next upgrade. */
export interface PreparedStatus {
  pid: number
  qemu: string
  qemuVersion: string
  /** The generation it will become. */
  generation: number
  preparedAt: string
  /** 'waiting' for the upgrade, or how it exited (the next upgrade then starts a fresh QEMU). */
  state: string
}

export interface Prepared { dest: PreparedDestination, binary: QemuBinary, generation: number }

export class PreparedSlot {
  readonly #vmName: string
  #held: Prepared | undefined

  constructor (vmName: string) { this.#vmName = vmName }

  get held (): Prepared | undefined { return this.#held }

  /** Whether a prepared QEMU is held and has not exited. */
  get waiting (): boolean { return this.#held !== undefined && this.#held.dest.vm.exitStatus === undefined }

  hold (p: Prepared): void { this.#held = p }

  /** Hands the prepared destination to an update, which owns it from then on. */
  take (): Prepared | undefined {
    const p = this.#held
    this.#held = undefined
    return p
  }

  /** Takes back one that an update refused to start with; it is kept only if it still waits. */
  giveBack (p: Prepared): boolean {
    if (p.dest.vm.exitStatus !== undefined || p.dest.vm.qmp.closed) return false
    this.#held = p
    return true
  }

  status (): PreparedStatus | undefined {
    const p = this.#held
    if (p === undefined) return undefined
    const exit = p.dest.vm.exitStatus
    return {
      pid: p.dest.vm.pid, qemu: p.binary.path, qemuVersion: p.binary.versionText, generation: p.generation,
      preparedAt: p.dest.preparedAt, state: exit === undefined ? 'waiting' : `exited (${describeExit(exit)})`,
    }
  }

  /** Throws ERR_QEMU_PREPARED_MISMATCH if a prepared QEMU is held and `binary` is another file. */
  checkBinary (binary: string): void {
    const p = this.#held
    if (p === undefined || sameFile(binary, p.binary.path)) return
    throw new QemuError('ERR_QEMU_PREPARED_MISMATCH', `VM ${this.#vmName} has a prepared destination of ${p.binary.path} (QEMU pid ${p.dest.vm.pid}), not of ${binary}; ` +
      `upgrade without --qemu to use it, or drop it first with 'pagegift qemu prepare ${this.#vmName} --cancel'`)
  }

  /** Kills the prepared QEMU and waits for its exit; returns what it was. */
  async drop (): Promise<PreparedStatus | undefined> {
    const was = this.status()
    const p = this.take()
    if (p !== undefined) await discardPrepared(p.dest)
    return was
  }

  /** Kills the prepared QEMU without waiting, for a keeper on its way out. */
  kill (): void {
    const p = this.take()
    if (p !== undefined) killPrepared(p.dest)
  }
}

/** Whether two binary names lead to the same file (a bare name is looked up on PATH). */
function sameFile (a: string, b: string): boolean {
  const real = (name: string): string => {
    const path = resolveBinary(name) ?? name
    try { return realpathSync(path) } catch { return path }
  }
  return real(a) === real(b)
}
