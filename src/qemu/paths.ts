/**
 * Where a VM's files live: one directory (mode 0700) holding, per VM, the keeper's control socket,
 * the serial console log, QEMU's own log and the QMP and migration sockets of each generation.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'

/** `$PAGEGIFT_QEMU_DIR`, else `$XDG_RUNTIME_DIR/pagegift/qemu`, else a per-user directory in /tmp. */
export function defaultDir (): string {
  if (process.env.PAGEGIFT_QEMU_DIR !== undefined && process.env.PAGEGIFT_QEMU_DIR !== '') return process.env.PAGEGIFT_QEMU_DIR
  if (process.env.XDG_RUNTIME_DIR !== undefined && process.env.XDG_RUNTIME_DIR !== '') return join(process.env.XDG_RUNTIME_DIR, 'pagegift', 'qemu')
  return join(tmpdir(), `pagegift-${process.getuid?.() ?? 0}`, 'qemu')
}

/** VM names become file names, so they are kept to a safe alphabet. */
export function checkName (name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/.test(name)) {
    throw new TypeError(`VM name '${name}' must be 1-40 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`)
  }
  return name
}

export interface VmPaths {
  dir: string
  control: string
  /** The keeper's pagegift handoff socket, where a successor keeper takes over. */
  handoff: string
  console: string
  qemuLog: string
  keeperLog: string
  qmp (generation: number): string
  migration (generation: number): string
}

export function vmPaths (dir: string, name: string): VmPaths {
  checkName(name)
  return {
    dir,
    control: join(dir, `${name}.ctl`),
    handoff: join(dir, `${name}.handoff`),
    console: join(dir, `${name}.console.log`),
    qemuLog: join(dir, `${name}.qemu.log`),
    keeperLog: join(dir, `${name}.keeper.log`),
    qmp: (generation) => join(dir, `${name}.${generation}.qmp`),
    migration: (generation) => join(dir, `${name}.${generation}.mig`),
  }
}

export function ensureDir (dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
}
