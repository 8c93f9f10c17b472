/**
 * `pagegift qemu start|prepare|upgrade|status|stop`: run a VM whose RAM pagegift holds, and
 * live-update its QEMU process without copying the RAM. `start` runs the keeper (in the foreground,
 * or in the background with --detach); the other subcommands talk to the keeper over its control
 * socket.
 */
import { spawn } from 'node:child_process'
import { closeSync, fstatSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { request } from '../qemu/control.ts'
import { parseMemorySize } from '../qemu/host.ts'
import { checkDir, checkName, defaultDir, ensureDir, vmPaths } from '../qemu/paths.ts'
import { openLog } from '../qemu/process.ts'
import type { PrepareReply } from '../qemu/keeper.ts'
import type { PreparedStatus, UpgradeRecord, VmStatus } from '../qemu/vm.ts'

const USAGE = `usage:
  pagegift qemu start --name NAME --memory SIZE [--qemu BINARY] [--accel auto|kvm|tcg] [--machine TYPE] [--detach] [--dir DIR] -- [QEMU ARGS...]
  pagegift qemu prepare NAME [--qemu BINARY] [--timeout MS] [--json] [--dir DIR]   (start the next QEMU ahead; the upgrade is then only the switch)
  pagegift qemu prepare NAME --cancel [--dir DIR]   (drop the prepared QEMU)
  pagegift qemu upgrade NAME [--qemu BINARY] [--timeout MS] [--json] [--dir DIR]
  pagegift qemu upgrade-keeper NAME [--dir DIR]   (a new keeper process takes the VM over; QEMU keeps running)
  pagegift qemu status NAME [--json] [--dir DIR]
  pagegift qemu stop NAME [--dir DIR]
DIR defaults to $PAGEGIFT_QEMU_DIR, else $XDG_RUNTIME_DIR/pagegift/qemu, else /tmp/pagegift-UID/qemu.`

const out = (s: string): void => { process.stdout.write(s + '\n') }

export async function run (argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === 'start') return await start(rest)
  if (sub === 'prepare') return await prepare(rest)
  if (sub === 'upgrade') return await upgrade(rest)
  if (sub === 'upgrade-keeper') return await upgradeKeeper(rest)
  if (sub === 'status') return await status(rest)
  if (sub === 'stop') return await stop(rest)
  process.stderr.write(`${USAGE}\n`)
  return sub === '-h' || sub === '--help' ? 0 : 2
}

async function start (argv: string[]): Promise<number> {
  const dash = argv.indexOf('--')
  const own = dash < 0 ? argv : argv.slice(0, dash)
  const extraArgs = dash < 0 ? [] : argv.slice(dash + 1)
  const { values } = parseArgs({
    args: own,
    options: {
      name: { type: 'string' }, memory: { type: 'string' }, qemu: { type: 'string' }, accel: { type: 'string', default: 'auto' },
      machine: { type: 'string' }, dir: { type: 'string' }, detach: { type: 'boolean', default: false }, adopt: { type: 'boolean', default: false },
    },
  })
  if (values.name === undefined) throw new TypeError(`--name is required\n${USAGE}`)
  const name = checkName(values.name)
  const dir = values.dir ?? defaultDir()
  // The keeper needs the native addon (for the RAM region); status, upgrade and stop do not load it.
  const { startKeeper } = await import('../qemu/keeper.ts')
  if (values.adopt) {
    const keeper = await startKeeper({ dir, name }, null, out)
    out(`${name}: ready, keeper pid ${process.pid}`)
    return await keeper.done
  }
  if (values.memory === undefined) throw new TypeError(`--memory is required\n${USAGE}`)
  const memoryBytes = parseMemorySize(values.memory)
  const accel = values.accel
  if (accel !== 'auto' && accel !== 'kvm' && accel !== 'tcg') throw new TypeError(`--accel must be auto, kvm or tcg, not '${accel}'`)
  if (values.detach) return await startDetached(argv.filter((a, i) => a !== '--detach' || (dash >= 0 && i > dash)), dir, name)
  const keeper = await startKeeper({ dir, name }, { name, memoryBytes, qemu: values.qemu, accel, machine: values.machine, dir, extraArgs }, out)
  out(`${name}: ready, keeper pid ${process.pid}`)
  return await keeper.done
}

/** Starts the keeper as a background process and returns once its control socket answers. */
async function startDetached (argv: string[], dir: string, name: string): Promise<number> {
  const paths = vmPaths(dir, name)
  ensureDir(dir)
  const logFd = openLog(paths.keeperLog)
  const logStart = fstatSync(logFd).size
  const bin = fileURLToPath(new URL('../../bin/pagegift.js', import.meta.url))
  const child = spawn(process.execPath, [bin, 'qemu', 'start', ...argv], { detached: true, stdio: ['ignore', logFd, logFd] })
  closeSync(logFd)
  let exited = false
  child.once('exit', () => { exited = true })
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline && !exited) {
    try {
      const s = await request<VmStatus>(paths.control, { op: 'status' }, 2000)
      if (s.keeperPid === child.pid) {
        child.unref()
        out(`${name}: running on QEMU pid ${s.pid} (qemu ${s.qemuVersion}, ${s.accel}), keeper pid ${s.keeperPid}`)
        if (s.accel === 'tcg') out(`${name}: note: ${s.accelNote}`)
        out(`${name}: keeper log ${paths.keeperLog}, console log ${s.consoleLog ?? 'none (the VM\'s own serial options)'}`)
        return 0
      }
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (!exited) child.kill('SIGTERM')
  const said = readFileSync(paths.keeperLog).subarray(logStart).toString('utf8').trim().split('\n').slice(-5).join('\n')
  process.stderr.write(`pagegift qemu start: the keeper did not come up (see ${paths.keeperLog}):\n${said}\n`)
  return 1
}

function target (argv: string[], extra: Record<string, { type: 'string' | 'boolean' }>): { control: string, name: string, values: Record<string, string | boolean | undefined> } {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { dir: { type: 'string' }, json: { type: 'boolean' }, ...extra } })
  if (positionals.length !== 1) throw new TypeError(`expected exactly one VM name\n${USAGE}`)
  const name = checkName(positionals[0])
  const dir = (values.dir as string | undefined) ?? defaultDir()
  checkDir(dir) // A control socket in a directory others can write to could be anyone's.
  return { control: vmPaths(dir, name).control, name, values }
}

/** Starts a new keeper process that takes the VM over from the current one through a handoff. */
async function upgradeKeeper (argv: string[]): Promise<number> {
  const { name, values } = target(argv, {})
  const dir = (values.dir as string | undefined) ?? defaultDir()
  const before = await request<VmStatus>(vmPaths(dir, name).control, { op: 'status' }, 5000)
  const code = await startDetached(['--name', name, '--dir', dir, '--adopt'], dir, name)
  if (code === 0) out(`${name}: keeper pid ${before.keeperPid} handed over; QEMU pid ${before.pid} kept running`)
  return code
}

async function upgrade (argv: string[]): Promise<number> {
  const { control, name, values } = target(argv, { qemu: { type: 'string' }, timeout: { type: 'string' } })
  const timeoutMs = values.timeout === undefined ? 30_000 : Number(values.timeout)
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new RangeError('--timeout must be a positive number of ms')
  const r = await request<UpgradeRecord>(control, { op: 'upgrade', qemu: values.qemu as string | undefined, timeoutMs }, timeoutMs + 15_000)
  if (values.json === true) { out(JSON.stringify(r)); return 0 }
  if (r.preparedFallback !== undefined) out(`${name}: note: ${r.preparedFallback}`)
  out(`${name}: live update done, QEMU pid ${r.oldPid} -> ${r.newPid} (qemu ${r.qemuVersion}, ${r.destination === 'prepared' ? 'prepared destination' : 'fresh destination'})`)
  out(`  downtime (QEMU)            ${r.downtimeMs} ms`)
  out(`  STOP -> RESUME             ${r.stopResumeGapMs.toFixed(2)} ms`)
  out(`  migration (QEMU)           ${r.migrationMs} ms`)
  const start = r.destination === 'prepared' ? `prepared beforehand, checked in ${r.destinationStartMs.toFixed(1)} ms` : `new QEMU start ${r.destinationStartMs.toFixed(1)} ms`
  out(`  total (to guest running)   ${r.totalMs.toFixed(1)} ms (${start})`)
  out(`  old QEMU exited            ${r.sourceExitMs.toFixed(1)} ms after that`)
  out(`  bytes transferred          ${r.bytesTransferred} (RAM blocks: ${r.ramBytesTransferred})`)
  return 0
}

async function prepare (argv: string[]): Promise<number> {
  const { control, name, values } = target(argv, { qemu: { type: 'string' }, timeout: { type: 'string' }, cancel: { type: 'boolean' } })
  if (values.cancel === true && values.qemu !== undefined) throw new TypeError('--cancel takes no --qemu')
  const timeoutMs = values.timeout === undefined ? 30_000 : Number(values.timeout)
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new RangeError('--timeout must be a positive number of ms')
  const r = await request<PrepareReply>(control, { op: 'prepare', qemu: values.qemu as string | undefined, timeoutMs, cancel: values.cancel === true }, timeoutMs + 15_000)
  if (values.json === true) { out(JSON.stringify(r)); return 0 }
  if ('cancelled' in r) {
    out(r.cancelled === null ? `${name}: no prepared destination to cancel` : `${name}: prepared destination QEMU pid ${r.cancelled.pid} killed`)
    return 0
  }
  const p = r.prepared
  out(`${name}: ${p.reused ? 'already prepared' : 'prepared'}: destination QEMU pid ${p.pid} (qemu ${p.qemuVersion}, ${p.qemu}) waits; 'pagegift qemu upgrade ${name}' switches to it`)
  return 0
}

function describePrepared (p: PreparedStatus): string {
  const what = `prepared destination: QEMU pid ${p.pid} (qemu ${p.qemuVersion}, ${p.qemu}), generation ${p.generation}`
  return p.state === 'waiting' ? `${what}, waiting since ${p.preparedAt}` : `${what}, ${p.state}: the next upgrade starts a fresh QEMU`
}

async function status (argv: string[]): Promise<number> {
  const { control, values } = target(argv, {})
  const s = await request<VmStatus>(control, { op: 'status' }, 5000)
  if (values.json === true) { out(JSON.stringify(s)); return 0 }
  out(`${s.name}: ${s.state}, QEMU pid ${s.pid}, generation ${s.generation}, qemu ${s.qemuVersion} (${s.qemu}), ${s.accel}`)
  out(`  memory ${s.memoryBytes / 1024 ** 2} MiB, keeper pid ${s.keeperPid}, started ${s.startedAt}, console ${s.consoleLog ?? 'none (own serial options)'}`)
  if (s.prepared !== undefined) out(`  ${describePrepared(s.prepared)}`)
  for (const u of s.upgrades) {
    out(`  upgrade ${u.at}: pid ${u.oldPid} -> ${u.newPid} (${u.destination}), downtime ${u.downtimeMs} ms, gap ${u.stopResumeGapMs.toFixed(2)} ms, ` +
      `to guest running ${u.totalMs.toFixed(1)} ms, ${u.bytesTransferred} bytes`)
  }
  return 0
}

async function stop (argv: string[]): Promise<number> {
  const { control, name } = target(argv, {})
  await request(control, { op: 'stop' }, 20_000)
  out(`${name}: stopped`)
  return 0
}
