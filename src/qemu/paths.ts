/**
 * Where a VM's files live: one directory (mode 0700) holding, per VM, the keeper's control socket,
 * the serial console log, QEMU's own log and the QMP and migration sockets of each generation.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, realpathSync, type Stats } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { tmpdir } from 'node:os'
import { QemuError } from './errors.ts'

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

/**
 * Makes `dir` (and any missing parent) mode 0700, and refuses it unless nobody else can change what
 * is in it: a per-user directory in /tmp may have been made by anyone first. `dir` itself must be a
 * real directory (not a symlink) of ours with mode 0700; each parent must belong to us or root and
 * be writable by nobody else, unless it is sticky like /tmp (where others cannot rename our entries).
 * Symlinks among the parents are resolved first, so a safe path given through a link is accepted.
 */
export function ensureDir (dir: string): void {
  walkDir(dir, true)
}

/** The checks of ensureDir() on a directory a client is about to use; a missing one is left to fail later (ENOENT). */
export function checkDir (dir: string): void {
  walkDir(dir, false)
}

function walkDir (dir: string, create: boolean): void {
  const me = process.getuid?.() ?? 0
  let path = '/'
  const parts = canonicalParent(resolve(dir)).split('/').filter((p) => p !== '')
  for (const [i, part] of parts.entries()) {
    path = join(path, part)
    let st = lstatOrNull(path)
    if (st === null && !create) return
    if (st === null) {
      try {
        mkdirSync(path, { mode: 0o700 })
        chmodSync(path, 0o700) // The umask may have taken bits off; never adds any.
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      st = lstatSync(path)
    }
    const why = i === parts.length - 1 ? unsafeDir(st, me) : unsafeParent(st, me)
    if (why !== undefined) throw new QemuError('ERR_QEMU_UNSAFE_DIR', `refusing the VM directory ${dir}: ${path} ${why}`)
  }
}

/** `abs` with the symlinks in its existing parents resolved (not in its last component). */
function canonicalParent (abs: string): string {
  let existing = dirname(abs)
  const missing = [basename(abs)]
  while (!existsSync(existing)) {
    missing.unshift(basename(existing))
    existing = dirname(existing)
  }
  return join(realpathSync(existing), ...missing)
}

function lstatOrNull (path: string): Stats | null {
  try {
    return lstatSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

function unsafeDir (st: Stats, me: number): string | undefined {
  if (st.isSymbolicLink()) return 'is a symlink'
  if (!st.isDirectory()) return 'is not a directory'
  if (st.uid !== me) return `is owned by uid ${st.uid}, not by us (uid ${me})`
  if ((st.mode & 0o777) !== 0o700) return `has mode 0${(st.mode & 0o777).toString(8)}, not 0700`
  return undefined
}

/** The sticky bit: in such a directory only an entry's owner may rename or remove it. */
const S_ISVTX = 0o1000

function unsafeParent (st: Stats, me: number): string | undefined {
  if (!st.isDirectory()) return st.isSymbolicLink() ? 'is a symlink' : 'is not a directory'
  if (st.uid !== me && st.uid !== 0) return `is owned by uid ${st.uid}, neither us (uid ${me}) nor root`
  if ((st.mode & 0o022) !== 0 && (st.mode & S_ISVTX) === 0) return `is writable by others (mode 0${(st.mode & 0o7777).toString(8)}) and not sticky`
  return undefined
}
