/**
 * One QEMU process and its QMP connection. The guest RAM is a memfd that the caller holds; QEMU
 * inherits it as fd 3 and maps it through /proc/self/fd/3 with share=on, so that a second QEMU can
 * map the very same pages and a migration with x-ignore-shared moves no RAM at all.
 */
import { spawn } from 'node:child_process'
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, rmSync } from 'node:fs'
import { within } from '../within.ts'
import { QemuError } from './errors.ts'
import { QmpClient } from './qmp.ts'

/** The fd number the RAM memfd has inside QEMU: the slot after stdin, stdout and stderr. */
const RAM_FD_IN_CHILD = 3
export const RAM_BACKEND_ID = 'pagegift-ram'

export interface LaunchOptions {
  binary: string
  /** Guest RAM: a memfd of exactly `bytes` (shared), or anonymous QEMU memory when `fd` is absent. */
  ram: { bytes: number, fd?: number }
  qmpPath: string
  /**
   * The serial console is appended to this file, so it reads as one log across QEMU generations.
   * Leave it out when `extraArgs` set the serial ports themselves (see `setsSerial`).
   */
  consolePath?: string
  /** QEMU's stdout and stderr go to this fd, so its messages outlive the process that started it. */
  logFd: number
  accel: 'kvm' | 'tcg'
  machine?: string
  /** Start with `-incoming defer -S`: receive a migration, and run the guest only when told to. */
  incoming?: boolean
  /** Further QEMU arguments from the user, such as -kernel, -initrd, -append, -drive. */
  extraArgs?: string[]
  /** How long QEMU may take to open its QMP socket (default 10 s). */
  timeoutMs?: number
}

export interface ExitStatus { code: number | null, signal: string | null }

/**
 * A value for a QEMU option string (`-chardev file,path=VALUE,...`): QEMU splits those at commas
 * and reads `,,` as one comma, so a path with a comma would otherwise end the value and start an
 * option of the path's choosing.
 */
export function optionValue (value: string): string {
  return value.replaceAll(',', ',,')
}

/**
 * Whether QEMU arguments set up serial ports themselves: `-serial`, or an `isa-serial` device
 * (which takes the next free port). Then the keeper's console log must not take the first port.
 */
export function setsSerial (args: readonly string[]): boolean {
  return args.some((a, i) => a === '-serial' || a === '--serial' ||
    ((a === '-device' || a === '--device') && /^(driver=)?isa-serial(,|$)/.test(args[i + 1] ?? '')))
}

export function qemuArgs (o: LaunchOptions): string[] {
  const mib = o.ram.bytes / (1024 * 1024)
  const args = ['-nodefaults', '-no-user-config', '-display', 'none', '-accel', o.accel]
  if (o.ram.fd !== undefined) {
    args.push('-machine', `${o.machine ?? 'pc'},memory-backend=${RAM_BACKEND_ID}`, '-m', `${mib}M`,
      '-object', `memory-backend-file,id=${RAM_BACKEND_ID},size=${o.ram.bytes},mem-path=/proc/self/fd/${RAM_FD_IN_CHILD},share=on`)
  } else {
    args.push('-machine', o.machine ?? 'pc', '-m', `${mib}M`)
  }
  if (o.consolePath !== undefined) {
    if (setsSerial(o.extraArgs ?? [])) throw new TypeError('consolePath and a -serial (or isa-serial device) of extraArgs would compete for the serial port: pass one of them')
    args.push('-chardev', `file,id=pagegift-console,path=${optionValue(o.consolePath)},append=on`, '-serial', 'chardev:pagegift-console')
  }
  // The long form of `-qmp unix:PATH,...`, whose implicit first option would read a '=' in PATH as a key.
  args.push('-chardev', `socket,id=pagegift-qmp,path=${optionValue(o.qmpPath)},server=on,wait=off`, '-mon', 'chardev=pagegift-qmp,mode=control')
  if (o.incoming === true) args.push('-incoming', 'defer', '-S')
  return [...args, ...(o.extraArgs ?? [])]
}

export class QemuProcess {
  readonly pid: number
  readonly qmpPath: string
  /** Settles when the process has exited; never rejects. */
  readonly exited: Promise<ExitStatus>
  #exit: ExitStatus | undefined
  #qmp: QmpClient

  constructor (pid: number, qmp: QmpClient, qmpPath: string, exited: Promise<ExitStatus>) {
    this.pid = pid
    this.#qmp = qmp
    this.qmpPath = qmpPath
    this.exited = exited.then((s) => { this.#exit = s; return s })
  }

  get exitStatus (): ExitStatus | undefined { return this.#exit }

  get qmp (): QmpClient { return this.#qmp }

  /** Opens a new QMP connection, for example after handing the old one to another process and back. */
  async reconnect (timeoutMs = 5000): Promise<void> {
    this.#qmp.close()
    this.#qmp = await QmpClient.connect(this.qmpPath, { timeoutMs })
  }

  kill (signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.#exit !== undefined) return
    try { process.kill(this.pid, signal) } catch {}
  }

  /** Asks QEMU to quit over QMP and waits for it to exit; kills it if it does not within the timeout. */
  async quit (timeoutMs = 5000): Promise<ExitStatus> {
    if (this.#exit !== undefined) return this.#exit
    await this.qmp.execute('quit', undefined, { timeoutMs }).catch(() => {})
    return await this.waitExit(timeoutMs)
  }

  /** Waits for the exit up to `timeoutMs`, then sends SIGKILL and waits for that. */
  async waitExit (timeoutMs: number): Promise<ExitStatus> {
    const status = await within(this.exited, timeoutMs, undefined)
    if (status !== undefined) return status
    this.kill('SIGKILL')
    return await this.exited
  }
}

/** Starts QEMU and connects to its QMP socket. On any failure the process is killed. */
export async function launchQemu (o: LaunchOptions): Promise<QemuProcess> {
  if (o.ram.fd !== undefined && fstatSync(o.ram.fd).size !== o.ram.bytes) {
    throw new QemuError('ERR_QEMU_MEMORY_SIZE', `RAM fd holds ${fstatSync(o.ram.fd).size} bytes, not the ${o.ram.bytes} the VM needs`)
  }
  const logStart = fstatSync(o.logFd).size
  // A socket file left at this path (by a QEMU whose keeper crashed) must not be mistaken for ours.
  rmSync(o.qmpPath, { force: true })
  const stdio: Array<'ignore' | number> = ['ignore', o.logFd, o.logFd]
  if (o.ram.fd !== undefined) stdio.push(o.ram.fd)
  const child = spawn(o.binary, qemuArgs(o), { stdio, detached: true })
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
    child.once('error', () => resolve({ code: null, signal: null }))
  })
  const deadline = Date.now() + (o.timeoutMs ?? 10_000)
  let done: ExitStatus | undefined
  void exited.then((s) => { done = s })
  while (true) {
    if (done !== undefined || child.pid === undefined) {
      await exited
      throw new QemuError('ERR_QEMU_START_FAILED', `QEMU exited while starting: ${logTail(o.logFd, logStart)}`)
    }
    try {
      const qmp = await QmpClient.connect(o.qmpPath, { timeoutMs: Math.max(500, deadline - Date.now()) })
      return new QemuProcess(child.pid, qmp, o.qmpPath, exited)
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        await exited
        throw new QemuError('ERR_QEMU_START_FAILED', `QEMU did not open its QMP socket within ${o.timeoutMs ?? 10_000} ms: ${logTail(o.logFd, logStart)}`, { cause: err })
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
}

/**
 * Takes charge of a QEMU that another process started (a keeper's predecessor). It is not our
 * child, so its exit is noticed by polling its pid; QMP accepts us once the previous client left.
 */
export async function attachQemu (pid: number, qmpPath: string, timeoutMs = 5000): Promise<QemuProcess> {
  if (!pidAlive(pid)) throw new QemuError('ERR_QEMU_EXITED', `QEMU pid ${pid} is not running`)
  const qmp = await QmpClient.connect(qmpPath, { timeoutMs })
  const exited = new Promise<ExitStatus>((resolve) => {
    const timer = setInterval(() => {
      if (!pidAlive(pid)) { clearInterval(timer); resolve({ code: null, signal: null }) }
    }, 100)
    timer.unref()
  })
  return new QemuProcess(pid, qmp, qmpPath, exited)
}

/** Whether `pid` runs (a zombie does not count: it has exited, and only awaits its parent). */
export function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return false
  }
}

/** What QEMU wrote to its log since it started, trimmed to the last few lines. */
function logTail (logFd: number, from: number): string {
  const size = fstatSync(logFd).size
  const len = Math.min(size - from, 4096)
  if (len <= 0) return '(no output)'
  const buf = Buffer.alloc(len)
  readSync(logFd, buf, 0, len, size - len)
  return buf.toString('utf8').trim().split('\n').slice(-5).join(' | ')
}

/**
 * Opens (appending, creating it 0600) a log file in a VM directory. A symlink there is refused
 * (ELOOP) rather than followed, and so is anything but a regular file.
 */
export function openLog (path: string): number {
  const fd = openSync(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600)
  if (!fstatSync(fd).isFile()) {
    closeSync(fd)
    throw new QemuError('ERR_QEMU_UNSAFE_DIR', `refusing the log file ${path}: it is not a regular file`)
  }
  return fd
}
