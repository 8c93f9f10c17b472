/**
 * `npm run bench -- qemu`: a pagegift live update (shared RAM, x-ignore-shared) against a normal
 * precopy migration of the same guest with anonymous RAM, at 256 MiB and 1 GiB. The guest first
 * fills 5/8 of its RAM with non-zero data, so precopy has real pages to send.
 *
 * Each method runs two ways. With a prepared destination, the next QEMU is started and made to
 * listen before the timed window for both methods alike, so the window holds only the switch. End
 * to end, the window also holds starting the new QEMU. The old QEMU's exit is timed apart in both:
 * the guest already runs on the new QEMU by then.
 *
 * Flags: --runs=N migrations of each kind per size (default 5, taking turns), --sizes=256M,1G.
 */
import { closeSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatBytes, formatMs, printTable, stats, writeResults } from './lib.ts'
import { findQemu, parseMemorySize } from '../src/qemu/host.ts'
import { liveUpdate, type UpgradeReport } from '../src/qemu/liveupdate.ts'
import { prepareDestination, type PreparedDestination } from '../src/qemu/prepare.ts'
import { launchQemu, openLog, type LaunchOptions, type QemuProcess } from '../src/qemu/process.ts'
import { Vm } from '../src/qemu/vm.ts'
import { buildGuest, FILLED_LINE, type Guest } from '../tools/guest/build.ts'
import { qemuSkipReason, waitForCount } from '../tools/guest/qemu.ts'

const BOOT_TIMEOUT_MS = 600_000

type Method = 'pagegift' | 'precopy'
type Destination = 'prepared' | 'fresh'
interface Row { size: string, method: Method, destination: Destination, reports: UpgradeReport[] }

const METHOD_LABEL: Record<Method, string> = { pagegift: 'pagegift live update', precopy: 'precopy, anonymous RAM' }
const DEST_LABEL: Record<Destination, string> = { prepared: 'prepared ahead', fresh: 'started in window' }

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
        const kinds: Kind[] = [
          { method: 'pagegift', destination: 'prepared', run: async () => await upgradePrepared(vm) },
          { method: 'precopy', destination: 'prepared', run: async () => await precopyPrepared(anon) },
          { method: 'pagegift', destination: 'fresh', run: async () => await vm.upgrade({ timeoutMs: 60_000 }) },
          { method: 'precopy', destination: 'fresh', run: async () => await anon.migrate() },
        ]
        for (const [k, reports] of await interleave(kinds, runs)) rows.push({ size: size.label, method: k.method, destination: k.destination, reports })
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

/**
 * A pause before each run, and between a prepare and its upgrade: a prepared QEMU then has finished
 * starting up, as it has when an upgrade comes some time after the prepare. Every kind gets the same.
 */
async function settle (): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 200))
}

function flagValue (flags: string[], name: string): string | undefined {
  const f = flags.find((x) => x.startsWith(`--${name}=`))
  return f?.slice(name.length + 3)
}

interface Kind { method: Method, destination: Destination, run: () => Promise<UpgradeReport> }

/**
 * Runs each kind `runs` times, taking turns, so that the load of a machine shared with other work
 * falls on all of them alike rather than on whichever ran during a busy spell. Each pagegift kind
 * gets one unmeasured warm-up first, and every run starts after a short pause.
 */
async function interleave (kinds: Kind[], runs: number): Promise<Map<Kind, UpgradeReport[]>> {
  for (const k of kinds) if (k.method === 'pagegift') await k.run()
  const out = new Map<Kind, UpgradeReport[]>(kinds.map((k) => [k, []]))
  for (let i = 0; i < runs; i++) {
    for (const k of kinds) {
      await settle()
      out.get(k)?.push(await k.run())
    }
  }
  return out
}

async function precopyPrepared (anon: AnonymousVm): Promise<UpgradeReport> {
  const prepared = await anon.prepare()
  await settle()
  return await anon.migrate(prepared)
}

async function upgradePrepared (vm: Vm): Promise<UpgradeReport> {
  await vm.prepare()
  await settle()
  const r = await vm.upgrade({ timeoutMs: 60_000 })
  if (r.destination !== 'prepared') throw new Error(`the prepared destination was not used: ${r.preparedFallback ?? ''}`)
  return r
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

interface AnonymousVm {
  /** Starts the next QEMU and makes it listen, as `Vm.prepare` does for the pagegift guest. */
  prepare: () => Promise<PreparedDestination>
  migrate: (prepared?: PreparedDestination) => Promise<UpgradeReport>
  stop: () => Promise<void>
}

/** The same guest on anonymous QEMU RAM, migrated the ordinary way: every dirty page is copied. */
async function bootAnonymous (guest: Guest, dir: string, bytes: number, fillMiB: number): Promise<AnonymousVm> {
  const binary = (await findQemu()).path
  const name = `anon${bytes}`
  const logFd = openLog(join(dir, `${name}.qemu.log`))
  const consolePath = join(dir, `${name}.console.log`)
  let generation = 1
  const base = (gen: number): LaunchOptions => ({ binary, ram: { bytes }, qmpPath: join(dir, `${name}.${gen}.qmp`), consolePath, logFd, accel: 'tcg', extraArgs: guestArgs(guest, fillMiB) })
  const socketBase = (gen: number): string => join(dir, `${name}.${gen}.mig`)
  let current: QemuProcess = await launchQemu(base(1))
  await waitFilled(consolePath)
  return {
    prepare: async () => await prepareDestination(async () => await launchQemu({ ...base(generation + 1), incoming: true }), { socketBase: socketBase(generation + 1), copyRam: true, source: current }),
    migrate: async (prepared) => {
      generation++
      const { vm, report } = await liveUpdate(current, {
        copyRam: true, countBytes: false, socketBase: socketBase(generation), timeoutMs: 300_000, prepared,
        launchDestination: async () => await launchQemu({ ...base(generation), incoming: true }),
      })
      if (prepared !== undefined && report.destination !== 'prepared') throw new Error(`the prepared destination was not used: ${report.preparedFallback ?? ''}`)
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

const med = (r: Row, f: (x: UpgradeReport) => number): number => stats(r.reports.map(f)).median

function report (rows: Row[]): void {
  printTable(rows.map((r) => ({
    'guest RAM': r.size,
    method: METHOD_LABEL[r.method],
    'new QEMU': DEST_LABEL[r.destination],
    runs: r.reports.length,
    'downtime (QEMU)': formatMs(med(r, (x) => x.downtimeMs)),
    'STOP->RESUME': formatMs(med(r, (x) => x.stopResumeGapMs)),
    'migration (QEMU)': formatMs(med(r, (x) => x.migrationMs)),
    'total (to guest running)': formatMs(med(r, (x) => x.totalMs)),
    'of which QEMU start': formatMs(med(r, (x) => x.destinationStartMs)),
    'old QEMU exited (after)': formatMs(med(r, (x) => x.sourceExitMs)),
    'bytes moved': formatBytes(med(r, (x) => x.bytesTransferred)),
  })))
  for (const size of new Set(rows.map((r) => r.size))) {
    const find = (method: Method, destination: Destination): Row | undefined => rows.find((r) => r.size === size && r.method === method && r.destination === destination)
    const ratio = (destination: Destination, f: (x: UpgradeReport) => number): string => {
      const ours = find('pagegift', destination)
      const theirs = find('precopy', destination)
      return ours === undefined || theirs === undefined ? 'n/a' : `${(med(theirs, f) / med(ours, f)).toFixed(0)}x`
    }
    const total = (x: UpgradeReport): number => x.totalMs
    process.stdout.write(`${size}: precopy/pagegift total time to guest running:\n` +
      `  both destinations prepared ahead (the switch itself):   ${ratio('prepared', total)}\n` +
      `  end to end (new QEMU started within the window):       ${ratio('fresh', total)}\n` +
      `  end to end including the old QEMU's exit:               ${ratio('fresh', (x) => x.totalMs + x.sourceExitMs)}\n` +
      `  migration time (QEMU), prepared / fresh:                ${ratio('prepared', (x) => x.migrationMs)} / ${ratio('fresh', (x) => x.migrationMs)}\n` +
      `  bytes moved:                                            ${ratio('fresh', (x) => x.bytesTransferred)}\n`)
  }
  process.stdout.write('pagegift bytes are counted on the migration socket; precopy bytes are QEMU\'s ram.transferred (its stream is not relayed, so it runs at full speed).\n')
  writeResults('qemu', rows.map((r) => ({ size: r.size, method: r.method, destination: r.destination, runs: r.reports })))
}
