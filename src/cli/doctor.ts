/** `pagegift doctor`: what this host supports, and which path a same-user gift will take. */
import { readFileSync } from 'node:fs'
import { release as kernelRelease } from 'node:os'
import { SystemError } from '../errors.ts'
import { AsyncOp, F_SEAL_GROW, F_SEAL_SHRINK, SPLICE_F_GIFT, native } from '../native.ts'
import { pageSize } from '../pages.ts'

interface Check { name: string, ok: boolean, detail: string }

function readSys (path: string): string | undefined {
  try { return readFileSync(path, 'utf8').trim() } catch { return undefined }
}

function memfdCheck (): Check {
  const fd = native.memfdCreate('pagegift-doctor', pageSize, true)
  if (fd < 0) return { name: 'memfd + seals', ok: false, detail: new SystemError(fd, 'memfd_create').message }
  const seals = native.getSeals(fd)
  native.close(fd)
  const ok = seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) === (F_SEAL_SHRINK | F_SEAL_GROW)
  return { name: 'memfd + seals', ok, detail: ok ? 'memfd_create, F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL' : 'seals not applied' }
}

async function cmaCheck (): Promise<Check> {
  const src = new Uint8Array(64).fill(7)
  const dst = new Uint8Array(64)
  const r = await native.async(AsyncOp.VmRead, process.pid, 0, [dst, 0, 64], new Float64Array(native.addresses([src, 0, 64])))
  const yama = readSys('/proc/sys/kernel/yama/ptrace_scope')
  const scope = yama === undefined ? 'no Yama' : `Yama ptrace_scope=${yama}${yama === '1' ? ' (writer names its reader with PR_SET_PTRACER)' : yama === '0' ? '' : ' (same-user reads refused unless CAP_SYS_PTRACE)'}`
  if (r < 0) return { name: 'process_vm_readv', ok: false, detail: `${new SystemError(r, 'process_vm_readv').code}; ${scope}` }
  const crossOk = yama === undefined || yama === '0' || yama === '1' || process.getuid?.() === 0
  return { name: 'process_vm_readv', ok: crossOk && dst[0] === 7, detail: scope }
}

async function spliceCheck (): Promise<Check> {
  const pipe = native.pipe(1 << 20)
  const max = readSys('/proc/sys/fs/pipe-max-size') ?? '?'
  if (typeof pipe === 'number') return { name: 'vmsplice', ok: false, detail: new SystemError(pipe, 'pipe2').message }
  const src = new Uint8Array(pageSize).fill(1)
  const r = await native.async(AsyncOp.Vmsplice, pipe[1], SPLICE_F_GIFT, [src, 0, src.byteLength], null)
  native.close(pipe[0])
  native.close(pipe[1])
  if (r < 0) return { name: 'vmsplice', ok: false, detail: new SystemError(r, 'vmsplice').message }
  return { name: 'vmsplice', ok: true, detail: `SPLICE_F_GIFT into a pipe of ${pipe[2]} bytes; pipe-max-size ${max}` }
}

export async function run (argv: string[]): Promise<number> {
  const json = argv.includes('--json')
  const unknown = argv.filter((a) => a !== '--json')
  if (unknown.length > 0) {
    process.stderr.write(`usage: pagegift doctor [--json]\nunknown argument: ${unknown[0]}\n`)
    return 2
  }
  const thp = readSys('/sys/kernel/mm/transparent_hugepage/shmem_enabled') ?? 'unknown'
  const checks: Check[] = [
    { name: 'kernel', ok: process.platform === 'linux', detail: `${process.platform} ${kernelRelease()} ${process.arch}` },
    { name: 'page size', ok: true, detail: `${pageSize} bytes` },
    memfdCheck(),
    await cmaCheck(),
    await spliceCheck(),
    { name: 'THP for shmem', ok: true, detail: `${thp}${thp.includes('[never]') ? ' (4 KiB pages: mapping cost is the same, page faults are per 4 KiB)' : ''}` },
  ]
  const disabled = (process.env.PAGEGIFT_DISABLE ?? '').split(',').filter((s) => s !== '')
  const usable = (name: string, path: string): boolean => checks.find((c) => c.name === name)?.ok === true && !disabled.includes(path)
  const path = usable('memfd + seals', 'move') ? 'move' : usable('process_vm_readv', 'cma') ? 'cma' : usable('vmsplice', 'splice') ? 'splice' : 'copy'
  if (json) {
    process.stdout.write(JSON.stringify({ checks, path, disabled }, null, 2) + '\n')
    return 0
  }
  for (const c of checks) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(17)} ${c.detail}\n`)
  if (disabled.length > 0) process.stdout.write(`      PAGEGIFT_DISABLE: ${disabled.join(', ')}\n`)
  process.stdout.write(`\nA same-user gift of giftable pages takes: ${path}${path === 'move' ? ' (zero copies)' : ''}\n`)
  return 0
}
