/**
 * `npm run bench -- qemu`: a pagegift live update (shared RAM, x-ignore-shared) against a normal
 * precopy migration of the same guest with anonymous RAM, at 256 MiB and 1 GiB. The guest first
 * fills 5/8 of its RAM with non-zero data, so precopy has real pages to send.
 *
 * Flags: --runs=N migrations of each kind per size (default 5), --sizes=256M,1G.
 */
import { closeSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatBytes, formatMs, printTable, stats, writeResults } from './lib.ts'
import { findQemu, parseMemorySize } from '../src/qemu/host.ts'
import { liveUpdate, type UpgradeReport } from '../src/qemu/liveupdate.ts'
import { launchQemu, openLog, type LaunchOptions, type QemuProcess } from '../src/qemu/process.ts'
import { Vm } from '../src/qemu/vm.ts'
import { buildGuest, FILLED_LINE, type Guest } from '../test/fixtures/guest/build.ts'
import { qemuSkipReason, waitForCount } from '../test/fixtures/guest/qemu.ts'

const BOOT_TIMEOUT_MS = 600_000

interface Row { size: string, method: string, reports: UpgradeReport[] }

export async function run (flags: string[]): Promise<void> {
  const skip = qemuSkipReason()
  if (skip !== false) { process.stdout.write(`qemu bench skipped: ${skip}\n`); return }
  const runs = Number(flagValue(flags, 'runs') ?? 5)
  const sizes = (flagValue(flags, 'sizes') ?? '256M,1G').split(',').map((s) => ({ label: s, bytes: parseMemorySize(s) }))
  const guest = buildGuest()
  const dir = mkdtempSync(join(tmpdir(), 'pagegift-bench-qemu-'))
  const rows: Row[] = []
  try {
    for (const size of sizes) {
      const fillMiB = Math.floor(size.bytes / 1024 ** 2 * 5 / 8)
      process.stdout.write(`${size.label}: booting both guests and filling ${fillMiB} MiB of their RAM (TCG, this takes a while)\n`)
      const [vm, anon] = await Promise.all([bootShared(guest, dir, size.bytes, fillMiB), bootAnonymous(guest, dir, size.bytes, fillMiB)])
      try {
        rows.push({ size: size.label, method: 'pagegift live update', reports: await repeat(runs, 1, async () => await vm.upgrade({ timeoutMs: 60_000 })) })
        rows.push({ size: size.label, method: 'precopy (anonymous RAM)', reports: await repeat(Math.max(3, runs), 0, async () => await anon.migrate()) })
      } finally {
        await vm.stop().catch(() => vm.kill())
        await anon.stop()
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    rmSync(guest.dir, { recursive: true, force: true })
  }
  report(rows)
}

function flagValue (flags: string[], name: string): string | undefined {
  const f = flags.find((x) => x.startsWith(`--${name}=`))
  return f?.slice(name.length + 3)
}

async function repeat (runs: number, warmup: number, fn: () => Promise<UpgradeReport>): Promise<UpgradeReport[]> {
  for (let i = 0; i < warmup; i++) await fn()
  const out: UpgradeReport[] = []
  for (let i = 0; i < runs; i++) out.push(await fn())
  return out
}

async function waitFilled (consolePath: string): Promise<void> {
  const deadline = Date.now() + BOOT_TIMEOUT_MS
  while (!readFileSync(consolePath, 'utf8').includes(FILLED_LINE)) {
    if (Date.now() > deadline) throw new Error(`guest did not finish filling its RAM; see ${consolePath}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  await waitForCount(consolePath, 1)
}

async function bootShared (guest: Guest, dir: string, bytes: number, fillMiB: number): Promise<Vm> {
  const vm = await Vm.start({ name: `shared${bytes}`, memoryBytes: bytes, accel: 'auto', dir, extraArgs: guestArgs(guest, fillMiB) })
  await waitFilled(vm.paths.console)
  return vm
}

/** The same guest on anonymous QEMU RAM, migrated the ordinary way: every dirty page is copied. */
async function bootAnonymous (guest: Guest, dir: string, bytes: number, fillMiB: number): Promise<{ migrate: () => Promise<UpgradeReport>, stop: () => Promise<void> }> {
  const binary = (await findQemu()).path
  const name = `anon${bytes}`
  const logFd = openLog(join(dir, `${name}.qemu.log`))
  const consolePath = join(dir, `${name}.console.log`)
  let generation = 1
  const base = (): LaunchOptions => ({ binary, ram: { bytes }, qmpPath: join(dir, `${name}.${generation}.qmp`), consolePath, logFd, accel: 'tcg', extraArgs: guestArgs(guest, fillMiB) })
  let current: QemuProcess = await launchQemu(base())
  await waitFilled(consolePath)
  return {
    migrate: async () => {
      generation++
      const { vm, report } = await liveUpdate(current, {
        copyRam: true, countBytes: false, socketBase: join(dir, `${name}.${generation}.mig`), timeoutMs: 300_000,
        launchDestination: async () => await launchQemu({ ...base(), incoming: true }),
      })
      current = vm
      return report
    },
    stop: async () => {
      await current.quit()
      current.qmp.close()
      closeSync(logFd)
    },
  }
}

function guestArgs (guest: Guest, fillMiB: number): string[] {
  return ['-kernel', guest.kernel, '-initrd', guest.initrd, '-append', guest.append(fillMiB)]
}

function report (rows: Row[]): void {
  const med = (r: Row, f: (x: UpgradeReport) => number): number => stats(r.reports.map(f)).median
  printTable(rows.map((r) => ({
    'guest RAM': r.size,
    method: r.method,
    runs: r.reports.length,
    'downtime (QEMU)': formatMs(med(r, (x) => x.downtimeMs)),
    'STOP->RESUME': formatMs(med(r, (x) => x.stopResumeGapMs)),
    'migration (QEMU)': formatMs(med(r, (x) => x.migrationMs)),
    'end to end': formatMs(med(r, (x) => x.totalMs)),
    'of which QEMU start+exit': formatMs(med(r, (x) => x.destinationStartMs + x.sourceExitMs)),
    'bytes moved': formatBytes(med(r, (x) => x.bytesTransferred)),
  })))
  for (const size of new Set(rows.map((r) => r.size))) {
    const ours = rows.find((r) => r.size === size && r.method.startsWith('pagegift'))
    const theirs = rows.find((r) => r.size === size && r.method.startsWith('precopy'))
    if (ours === undefined || theirs === undefined) continue
    const ratio = (f: (x: UpgradeReport) => number): string => (med(theirs, f) / med(ours, f)).toFixed(0)
    process.stdout.write(`${size}: precopy/pagegift = ${ratio((x) => x.migrationMs)}x migration time, ${ratio((x) => x.totalMs)}x end to end, ${ratio((x) => x.bytesTransferred)}x bytes\n`)
  }
  process.stdout.write('pagegift bytes are counted on the migration socket; precopy bytes are QEMU\'s ram.transferred (its stream is not relayed, so it runs at full speed).\n')
  writeResults('qemu', rows.map((r) => ({ size: r.size, method: r.method, runs: r.reports })))
}
