/**
 * Facts about the host that decide how a VM can be started: where QEMU is and whether it is new
 * enough, whether KVM really works, and whether a memory size fits. Each failure is an error a
 * user can act on.
 */
import { execFile } from 'node:child_process'
import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { delimiter, isAbsolute, join } from 'node:path'
import { promisify } from 'node:util'
import { QemuError } from './errors.ts'

const execFileAsync = promisify(execFile)

/** `memory-backend=` on -machine arrived in QEMU 5.0; `x-ignore-shared` in 4.0. */
export const MIN_QEMU_VERSION = { major: 5, minor: 0 }
export const DEFAULT_QEMU = 'qemu-system-x86_64'

export interface QemuBinary { path: string, version: { major: number, minor: number, micro: number }, versionText: string }

/** Resolves `name` on PATH (or as a path), without running it. */
export function resolveBinary (name: string): string | undefined {
  const candidates = name.includes('/') ? [name] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name))
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK)
      return isAbsolute(c) ? c : join(process.cwd(), c)
    } catch {}
  }
  return undefined
}

/** Finds a QEMU binary and checks that it is new enough for a live update. */
export async function findQemu (name: string = DEFAULT_QEMU): Promise<QemuBinary> {
  const path = resolveBinary(name)
  if (path === undefined) {
    throw new QemuError('ERR_QEMU_NOT_FOUND', `QEMU binary '${name}' not found; install it (Debian: apt-get install qemu-system-x86) or pass --qemu /path/to/qemu-system-x86_64`)
  }
  let out: string
  try {
    out = (await execFileAsync(path, ['-version'], { timeout: 10_000 })).stdout
  } catch (err) {
    throw new QemuError('ERR_QEMU_NOT_FOUND', `'${path}' does not run as QEMU: ${(err as Error).message.split('\n')[0]}`, { cause: err })
  }
  const m = /QEMU emulator version (\d+)\.(\d+)\.(\d+)/.exec(out)
  if (m === null) throw new QemuError('ERR_QEMU_NOT_FOUND', `'${path}' is not QEMU: its -version says '${out.split('\n')[0]}'`)
  const version = { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3]) }
  if (version.major < MIN_QEMU_VERSION.major || (version.major === MIN_QEMU_VERSION.major && version.minor < MIN_QEMU_VERSION.minor)) {
    throw new QemuError('ERR_QEMU_TOO_OLD', `QEMU ${version.major}.${version.minor}.${version.micro} at ${path} is too old: a live update needs ${MIN_QEMU_VERSION.major}.${MIN_QEMU_VERSION.minor} or newer (for -machine memory-backend= and the x-ignore-shared migration capability)`)
  }
  return { path, version, versionText: `${version.major}.${version.minor}.${version.micro}` }
}

/**
 * Whether KVM can actually run a guest. /dev/kvm may exist and open in a sandbox or a VM without
 * nested virtualisation and still hang the guest, so the CPU must also advertise vmx or svm.
 */
export function kvmUsable (): { usable: boolean, reason: string } {
  if (!existsSync('/dev/kvm')) return { usable: false, reason: '/dev/kvm does not exist' }
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK)
  } catch {
    return { usable: false, reason: '/dev/kvm is not accessible to this user (join the kvm group)' }
  }
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  if (!/^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo)) return { usable: false, reason: 'the CPU does not advertise vmx or svm (no nested virtualisation)' }
  return { usable: true, reason: 'KVM available' }
}

const UNITS: Record<string, number> = { '': 1024 * 1024, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }
/** The RAM block is mapped with 2 MiB huge-page alignment in mind; QEMU also rounds to it on x86. */
export const MEMORY_ALIGN = 2 * 1024 * 1024
export const MIN_MEMORY = 16 * 1024 * 1024

/**
 * Parses a QEMU-style memory size ("256M", "1G", "1024" meaning MiB) and checks that it fits:
 * a whole number of 2 MiB, at least 16 MiB, and below the memory this host has available.
 */
export function parseMemorySize (text: string): number {
  const m = /^(\d+)\s*([BKMGT]?)(?:i?B)?$/i.exec(text.trim())
  if (m === null) throw new QemuError('ERR_QEMU_MEMORY_SIZE', `memory size '${text}' is not a size such as 512M or 1G`)
  const bytes = Number(m[1]) * UNITS[m[2].toUpperCase()]
  if (!Number.isSafeInteger(bytes) || bytes < MIN_MEMORY) throw new QemuError('ERR_QEMU_MEMORY_SIZE', `memory size '${text}' is below the minimum of 16M`)
  if (bytes % MEMORY_ALIGN !== 0) throw new QemuError('ERR_QEMU_MEMORY_SIZE', `memory size '${text}' is not a multiple of 2M`)
  const available = memAvailable()
  if (available !== undefined && bytes > available) {
    throw new QemuError('ERR_QEMU_MEMORY_SIZE', `memory size '${text}' does not fit: the host has ${Math.floor(available / 1024 ** 2)} MiB available`)
  }
  return bytes
}

function memAvailable (): number | undefined {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))
  return m === null ? undefined : Number(m[1]) * 1024
}
