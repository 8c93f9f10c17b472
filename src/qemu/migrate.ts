/**
 * One migration from a running source QEMU to a destination started with `-incoming defer` and
 * `-S`. The stream goes through a relay on a Unix socket that counts its bytes, because QEMU's own
 * `ram.transferred` leaves out the device state, and the bytes that really crossed are the claim.
 * Progress is followed through MIGRATION events (the `events` capability), not by polling, so the
 * commit does not wait for a poll interval.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import { rmSync } from 'node:fs'
import { QemuError } from './errors.ts'
import type { QemuProcess } from './process.ts'

export interface MigrationOptions {
  /** Migrate RAM too (false: x-ignore-shared, for RAM that both QEMUs share). */
  copyRam: boolean
  /** Directory paths for the two sockets: the destination listens on `${socketBase}.in`, the relay on `${socketBase}.relay`. */
  socketBase: string
  timeoutMs: number
  /**
   * Relay the stream to count its bytes (default true). Without the relay the source writes to the
   * destination's socket directly and only QEMU's RAM count is known; benchmarks of plain precopy
   * use that, so the relay's copying does not slow the method it is compared with.
   */
  relay?: boolean
  /**
   * The destination was prepared ahead (see prepare.ts): its capabilities are set and it already
   * listens on `${socketBase}.in`, so the migration starts at once.
   */
  destinationListening?: boolean
  /** The source's capabilities were set when the destination was prepared. */
  sourceReady?: boolean
  /** Called once the source has been told to migrate (a hook for fault injection). */
  onStarted?: () => Promise<void> | void
}

export interface MigrationStats {
  /** Bytes that crossed the migration socket, counted by the relay (without it: QEMU's RAM count). */
  bytesTransferred: number
  /** QEMU's own count of RAM bytes sent (`ram.transferred`). */
  ramBytesTransferred: number
  /** QEMU's reported downtime of the guest, in ms. */
  downtimeMs: number
  /** QEMU's reported total migration time, in ms. */
  qemuTotalMs: number
}

/**
 * x-ignore-shared skips RAM blocks that are mapped shared, which is exactly the memfd-backed RAM.
 * The three commands are sent at once (QMP answers them in order), to keep the update short.
 */
export async function setCapabilities (vm: QemuProcess, copyRam: boolean, timeoutMs: number): Promise<void> {
  const [caps, ...sets] = await Promise.allSettled([
    vm.qmp.execute<Array<{ capability: string }>>('query-migrate-capabilities', undefined, { timeoutMs }),
    vm.qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'x-ignore-shared', state: !copyRam }, { capability: 'events', state: true }],
    }, { timeoutMs }),
    // QEMU 7.2 caps migration at 32 MiB/s by default; lift it so precopy is measured at full speed.
    vm.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 ** 3 }, { timeoutMs }),
  ])
  if (caps.status === 'rejected') throw caps.reason
  if (!caps.value.some((c) => c.capability === 'x-ignore-shared')) {
    throw new QemuError('ERR_QEMU_TOO_OLD', `QEMU (pid ${vm.pid}) has no x-ignore-shared migration capability`)
  }
  for (const r of sets) if (r.status === 'rejected') throw r.reason
}

/**
 * Migrates `source` into `dest`. Once the destination has loaded all state (it is then paused,
 * because of -S) it calls `resume`, which starts the guest there; the statistics are collected only
 * after that, so they add nothing to the downtime. Rejects on failure, timeout, or either process
 * dying; the caller rolls back.
 */
export async function migrate (source: QemuProcess, dest: QemuProcess, o: MigrationOptions, resume: () => Promise<void>): Promise<MigrationStats> {
  const deadline = Date.now() + o.timeoutMs
  const left = (): number => Math.max(1, deadline - Date.now())
  const inPath = `${o.socketBase}.in`
  const relayPath = `${o.socketBase}.relay`
  await Promise.all([
    o.sourceReady === true ? undefined : setCapabilities(source, o.copyRam, left()),
    o.destinationListening === true ? undefined : listenIncoming(dest, o.copyRam, inPath, left()),
  ])
  const relay = o.relay === false ? undefined : await startRelay(relayPath, inPath)
  try {
    const srcSince = source.qmp.nextEventSeq
    const dstSince = dest.qmp.nextEventSeq
    const isEnd = (d: Record<string, unknown>): boolean => ['completed', 'failed', 'cancelled'].includes(d.status as string)
    const srcDone = source.qmp.waitEvent('MIGRATION', { since: srcSince, match: isEnd, timeoutMs: left() })
    const dstDone = dest.qmp.waitEvent('MIGRATION', { since: dstSince, match: isEnd, timeoutMs: left() })
    srcDone.catch(() => {})
    dstDone.catch(() => {})
    await source.qmp.execute('migrate', { uri: `unix:${relay === undefined ? inPath : relayPath}` }, { timeoutMs: left() })
    await o.onStarted?.()
    const [srcEnd, dstEnd] = await Promise.all([
      orExit(srcDone, source, 'the source QEMU'),
      orExit(dstDone, dest, 'the destination QEMU'),
    ])
    if (srcEnd.data.status !== 'completed' || dstEnd.data.status !== 'completed') {
      throw new QemuError('ERR_QEMU_UPGRADE_FAILED', `migration ${String(srcEnd.data.status)} on the source, ${String(dstEnd.data.status)} on the destination`)
    }
    await resume()
    // The guest now runs on the destination: nothing after this point may fail the update, so the
    // statistics are best effort.
    type Info = { downtime?: number, 'total-time'?: number, ram?: { transferred?: number } }
    const info = await source.qmp.execute<Info>('query-migrate', undefined, { timeoutMs: 2000 }).catch((): Info => ({}))
    // The destination has loaded the whole stream, so every byte of it has passed the relay.
    return {
      bytesTransferred: relay?.bytes() ?? info.ram?.transferred ?? 0,
      ramBytesTransferred: info.ram?.transferred ?? 0,
      downtimeMs: info.downtime ?? Number.NaN,
      qemuTotalMs: info['total-time'] ?? Number.NaN,
    }
  } finally {
    relay?.close()
    rmSync(inPath, { force: true })
  }
}

/** Makes a destination started with `-incoming defer` ready to receive a migration at `inPath`. */
export async function listenIncoming (dest: QemuProcess, copyRam: boolean, inPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  await setCapabilities(dest, copyRam, timeoutMs)
  // QEMU binds the path itself; a file left there by an earlier destination that died would make it fail.
  rmSync(inPath, { force: true })
  await dest.qmp.execute('migrate-incoming', { uri: `unix:${inPath}` }, { timeoutMs: Math.max(1, deadline - Date.now()) })
}

/** Rejects as soon as `vm` exits, so that a dead peer fails the wait at once instead of at the timeout. */
export async function orExit<T> (wait: Promise<T>, vm: QemuProcess, who: string): Promise<T> {
  const died = vm.exited.then((s) => {
    throw new QemuError('ERR_QEMU_EXITED', `${who} (pid ${vm.pid}) exited (${s.signal ?? `code ${String(s.code)}`})`)
  })
  return await Promise.race([wait, died])
}

interface Relay { bytes (): number, close (): void }

/** Accepts one connection at `listenPath` and pipes it both ways to `targetPath`, counting bytes. */
async function startRelay (listenPath: string, targetPath: string): Promise<Relay> {
  rmSync(listenPath, { force: true })
  let count = 0
  const sockets: Socket[] = []
  const server: Server = createServer((from) => {
    server.close()
    const to = netConnect({ path: targetPath })
    sockets.push(from, to)
    from.on('data', (chunk: Buffer) => { count += chunk.length })
    from.pipe(to)
    to.pipe(from)
    from.on('error', () => to.destroy())
    to.on('error', () => from.destroy())
    from.on('close', () => to.destroy())
    to.on('close', () => from.destroy())
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(listenPath, () => resolve())
  })
  return {
    bytes: () => count,
    close: () => {
      server.close()
      for (const s of sockets) s.destroy()
      rmSync(listenPath, { force: true })
    },
  }
}
