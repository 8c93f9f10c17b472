/**
 * A live update: move a running guest from one QEMU process to a new one on the same shared RAM.
 *
 * The commit point is the destination's RESUME. Before it, every failure (the destination does not
 * start, the migration fails or times out, the destination dies) rolls back: the destination is
 * killed and the source resumes the guest. That is safe because the destination was started with
 * -S, so it has never run a guest instruction and has not touched the shared RAM. After the commit
 * the source is told to quit; its exit is timed apart, as it no longer holds up the guest.
 */
import { QemuError } from './errors.ts'
import { migrate, orExit } from './migrate.ts'
import { checkPrepared, discardPrepared, type PreparedDestination } from './prepare.ts'
import type { QemuProcess } from './process.ts'

export type UpgradePhase = 'destination-started' | 'migration-started' | 'migration-completed'

export interface LiveUpdateOptions {
  /** Starts the destination QEMU with `-incoming defer -S` on the same RAM as the source. */
  launchDestination: () => Promise<QemuProcess>
  /**
   * A destination started ahead by prepareDestination(). Once the update has begun it takes
   * charge of it: it is used if it still waits (and killed on a rollback), otherwise killed and
   * replaced by a fresh one from launchDestination, and the report says why. An update refused
   * before it begins (a guest in postmigrate) leaves it as it was. Its socketBase replaces `socketBase`.
   */
  prepared?: PreparedDestination
  /** Path prefix for the migration sockets. */
  socketBase: string
  /** Copy the RAM as a normal precopy migration does (for comparison); default false. */
  copyRam?: boolean
  /** Count the bytes through a relay (default true); see MigrationOptions.relay. */
  countBytes?: boolean
  /** Limit for the whole update before it rolls back (default 30 s). */
  timeoutMs?: number
  /** Called at each phase; tests use it to inject faults such as killing the destination. */
  onPhase?: (phase: UpgradePhase, dest: QemuProcess) => Promise<void> | void
}

export interface UpgradeReport {
  oldPid: number
  newPid: number
  /** Downtime as QEMU reports it on the source. */
  downtimeMs: number
  /** From the source's STOP event to the destination's RESUME event (QMP timestamps). */
  stopResumeGapMs: number
  /** The migration's total time as QEMU reports it on the source. */
  migrationMs: number
  /** 'prepared': a destination started ahead was used; 'fresh': one was started by the update. */
  destination: 'prepared' | 'fresh'
  /** Why a prepared destination could not be used, so a fresh one was started. */
  preparedFallback?: string
  /**
   * Time to get the new QEMU ready within the update, while the guest still runs on the old one:
   * starting and connecting to a fresh one, or checking that the prepared one still waits.
   */
  destinationStartMs: number
  /** From the start of the update until the guest runs on the new QEMU (the commit point). */
  totalMs: number
  /** From the commit until the old QEMU has exited (unmapping a large RAM takes a while); the guest already runs meanwhile. */
  sourceExitMs: number
  /** Bytes that crossed the migration socket. */
  bytesTransferred: number
  /** RAM bytes QEMU says it sent (ROMs and other unshared blocks). */
  ramBytesTransferred: number
}

export async function liveUpdate (source: QemuProcess, o: LiveUpdateOptions): Promise<{ vm: QemuProcess, report: UpgradeReport }> {
  const started = performance.now()
  const timeoutMs = o.timeoutMs ?? 30_000
  const srcSince = source.qmp.nextEventSeq
  let dest: QemuProcess | undefined
  let stats
  let resumedAt = Number.NaN
  let committedAt = Number.NaN
  let destinationStartMs = Number.NaN
  // A guest the user paused stays paused: on the destination, and on the source after a rollback.
  const [before, check] = await Promise.all([
    source.qmp.execute<{ running: boolean, status: string }>('query-status', undefined, { timeoutMs }),
    o.prepared === undefined ? undefined : checkPrepared(o.prepared),
  ])
  if (before.status === 'postmigrate') {
    // QEMU refuses to migrate from postmigrate, the state a rollback leaves a paused guest in.
    throw new QemuError('ERR_QEMU_UPGRADE_FAILED', `the guest on QEMU pid ${source.pid} is stopped in the postmigrate state left by a rolled-back update of a paused guest; resume it (QMP 'cont') before the next update`, { rolledBack: true })
  }
  const wasRunning = before.running
  let preparedFallback: string | undefined
  let socketBase = o.socketBase
  try {
    if (o.prepared !== undefined && check !== undefined) {
      if (check.usable) {
        dest = o.prepared.vm
        socketBase = o.prepared.socketBase
      } else {
        preparedFallback = `the prepared destination (QEMU pid ${o.prepared.vm.pid}) could not be used: ${check.reason}; started a fresh QEMU instead`
        await discardPrepared(o.prepared)
      }
    }
    const prepared = dest !== undefined
    dest ??= await o.launchDestination()
    destinationStartMs = performance.now() - started
    const d = dest
    await o.onPhase?.('destination-started', d)
    const onStarted = async (): Promise<void> => await o.onPhase?.('migration-started', d)
    const sourceReady = prepared && o.prepared?.source === source
    const mo = { copyRam: o.copyRam ?? false, socketBase, timeoutMs, onStarted, relay: o.countBytes, destinationListening: prepared, sourceReady }
    stats = await migrate(source, d, mo, async () => {
      await o.onPhase?.('migration-completed', d)
      if (!wasRunning) {
        // A paused guest is not resumed, so the commit point is the destination confirming it holds the state.
        const s = await orExit(d.qmp.execute<{ status: string }>('query-status', undefined, { timeoutMs }), d, 'the destination QEMU')
        if (s.status !== 'paused') throw new QemuError('ERR_QEMU_UPGRADE_FAILED', `the destination is '${s.status}' after the migration, not paused`)
        committedAt = performance.now()
        return
      }
      const resumed = d.qmp.waitEvent('RESUME', { since: d.qmp.nextEventSeq, timeoutMs })
      resumed.catch(() => {})
      await orExit(d.qmp.execute('cont', undefined, { timeoutMs }), d, 'the destination QEMU')
      resumedAt = (await orExit(resumed, d, 'the destination QEMU')).timeMs
      committedAt = performance.now()
    })
  } catch (err) {
    const rolledBack = await rollback(source, dest, wasRunning, timeoutMs)
    throw new QemuError('ERR_QEMU_UPGRADE_FAILED',
      `live update failed (${(err as Error).message}); ${rolledBack ? `rolled back: the guest runs on the old QEMU (pid ${source.pid})` : 'the rollback failed too'}`,
      { cause: err, rolledBack })
  }
  const stop = source.qmp.events.find((e) => e.event === 'STOP' && e.seq >= srcSince)
  await source.quit(5000)
  source.qmp.close()
  return {
    vm: dest,
    report: {
      oldPid: source.pid,
      newPid: dest.pid,
      destination: dest === o.prepared?.vm ? 'prepared' : 'fresh',
      ...(preparedFallback !== undefined ? { preparedFallback } : {}),
      downtimeMs: stats.downtimeMs,
      migrationMs: stats.qemuTotalMs,
      stopResumeGapMs: stop === undefined ? Number.NaN : resumedAt - stop.timeMs,
      destinationStartMs,
      totalMs: committedAt - started,
      sourceExitMs: performance.now() - committedAt,
      bytesTransferred: stats.bytesTransferred,
      ramBytesTransferred: stats.ramBytesTransferred,
    },
  }
}

/**
 * Kills the destination and makes the source run the guest again (or leaves it stopped if the user
 * had paused it). Returns whether the source was confirmed in that state. It refuses to resume the source if the destination ever resumed the guest,
 * since the guest RAM would then be newer than the source's CPU state.
 */
async function rollback (source: QemuProcess, dest: QemuProcess | undefined, wasRunning: boolean, timeoutMs: number): Promise<boolean> {
  if (dest !== undefined) {
    if (dest.qmp.events.some((e) => e.event === 'RESUME')) return false
    dest.kill('SIGKILL')
    await dest.waitExit(5000)
    dest.qmp.close()
    if (dest.qmp.events.some((e) => e.event === 'RESUME')) return false
  }
  const deadline = Date.now() + Math.min(timeoutMs, 10_000)
  try {
    const info = await source.qmp.execute<{ status?: string }>('query-migrate', undefined, { timeoutMs: 2000 })
    if (['setup', 'active', 'pre-switchover', 'device'].includes(info.status ?? '')) {
      await source.qmp.execute('migrate_cancel', undefined, { timeoutMs: 2000 })
    }
    while (Date.now() < deadline) {
      const s = await source.qmp.execute<{ running: boolean, status: string }>('query-status', undefined, { timeoutMs: 2000 })
      if (s.running) return true
      // A guest the user had paused is left stopped; `cont` resumes it from either state later.
      if (!wasRunning && (s.status === 'paused' || s.status === 'postmigrate')) return true
      // A completed migration leaves the source in postmigrate; a failed one restarts it by itself.
      if (s.status === 'postmigrate' || s.status === 'paused') await source.qmp.execute('cont', undefined, { timeoutMs: 2000 })
      else await new Promise((resolve) => setTimeout(resolve, 10))
    }
  } catch {}
  return false
}
