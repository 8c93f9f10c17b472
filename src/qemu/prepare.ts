/**
 * A prepared destination: the next QEMU, started ahead of a live update on the same RAM with
 * `-incoming defer -S`, its migration capabilities set and already listening for the stream.
 *
 * Starting a QEMU process takes tens of milliseconds (mostly dynamic linking and device set-up),
 * far longer than the migration itself when no RAM is copied. Doing it beforehand, while the guest
 * runs undisturbed on the current QEMU, leaves only the migration for the update. The prepared QEMU
 * has never run a guest instruction (-S), so it can wait as long as needed, or be dropped, without
 * touching the shared RAM.
 */
import { rmSync } from 'node:fs'
import { within } from '../within.ts'
import { listenIncoming, orExit, setCapabilities } from './migrate.ts'
import type { QemuProcess } from './process.ts'

export interface PreparedDestination {
  vm: QemuProcess
  /** Path prefix of the migration sockets; the prepared QEMU listens on `${socketBase}.in`. */
  socketBase: string
  /** Whether it was set up to receive the RAM as well (plain precopy, for comparison). */
  copyRam: boolean
  /** The source QEMU whose migration capabilities were set along with the destination's. */
  source?: QemuProcess
  preparedAt: string
}

export interface PrepareDestinationOptions {
  socketBase: string
  copyRam?: boolean
  timeoutMs?: number
  /** The QEMU to migrate from: its capabilities are set now too, so the update need not. */
  source?: QemuProcess
}

/** Starts a destination with `launch` and makes it ready to receive; kills it if that fails. */
export async function prepareDestination (launch: () => Promise<QemuProcess>, o: PrepareDestinationOptions): Promise<PreparedDestination> {
  const vm = await launch()
  const copyRam = o.copyRam ?? false
  const timeoutMs = o.timeoutMs ?? 10_000
  try {
    await Promise.all([
      orExit(listenIncoming(vm, copyRam, `${o.socketBase}.in`, timeoutMs), vm, 'the prepared QEMU'),
      o.source === undefined ? undefined : setCapabilities(o.source, copyRam, timeoutMs),
    ])
  } catch (err) {
    await discardPrepared({ vm, socketBase: o.socketBase, copyRam, preparedAt: '' })
    throw err
  }
  return { vm, socketBase: o.socketBase, copyRam, ...(o.source !== undefined ? { source: o.source } : {}), preparedAt: new Date().toISOString() }
}

/**
 * Whether a prepared destination can still take the migration: it runs, answers QMP, and is still
 * waiting for an incoming migration. A reason comes back when it cannot; that is an expected
 * outcome (the caller starts a fresh QEMU), not an error.
 */
export async function checkPrepared (p: PreparedDestination, timeoutMs = 1000): Promise<{ usable: true } | { usable: false, reason: string }> {
  const exited = p.vm.exitStatus
  if (exited !== undefined) return { usable: false, reason: `it exited (${describeExit(exited)})` }
  if (p.vm.qmp.closed) return { usable: false, reason: 'its QMP connection is closed' }
  try {
    const s = await orExit(p.vm.qmp.execute<{ status: string }>('query-status', undefined, { timeoutMs }), p.vm, 'the prepared QEMU')
    if (s.status !== 'inmigrate') return { usable: false, reason: `it is '${s.status}', not waiting for a migration` }
    return { usable: true }
  } catch (err) {
    // A QEMU killed a moment ago closes its QMP socket before its exit has been reaped.
    const s = await within(p.vm.exited, 200, undefined)
    return { usable: false, reason: s !== undefined ? `it exited (${describeExit(s)})` : (err as Error).message }
  }
}

/** Kills a prepared destination, waits for its exit and removes its sockets. */
export async function discardPrepared (p: PreparedDestination): Promise<void> {
  p.vm.kill('SIGKILL')
  await p.vm.waitExit(5000)
  p.vm.qmp.close()
  rmSync(p.vm.qmpPath, { force: true })
  rmSync(`${p.socketBase}.in`, { force: true })
}

/** The synchronous part of discardPrepared, for a keeper that cannot wait. */
export function killPrepared (p: PreparedDestination): void {
  p.vm.kill('SIGKILL')
  p.vm.qmp.close()
  rmSync(p.vm.qmpPath, { force: true })
  rmSync(`${p.socketBase}.in`, { force: true })
}

export function describeExit (s: { code: number | null, signal: string | null }): string {
  return s.signal !== null ? `signal ${s.signal}` : `code ${String(s.code)}`
}
