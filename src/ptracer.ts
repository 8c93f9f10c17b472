/**
 * Who may read this process's memory for the cma path. Without Yama, or with ptrace_scope 0, a
 * same-uid reader may process_vm_readv us and nothing needs granting. Under ptrace_scope 1 the writer
 * must name its reader with PR_SET_PTRACER, which hands that pid full ptrace rights over the writer,
 * and only one pid at a time. So that is opt-in (PAGEGIFT_CMA_PTRACER=1): the grant is made when a
 * reader asks for cma, for that one reader, and undone when its gift settles; a second reader while
 * one holds it is refused, and splice serves. Scopes 2 and 3 need CAP_SYS_PTRACE: cma is not offered.
 */
import { readFileSync } from 'node:fs'
import { SystemError } from './errors.ts'
import { native } from './native.ts'
import { testFlag } from './testhook.ts'

let scope: number | null | undefined

/** Yama's ptrace_scope, or null without Yama (a test may pretend with `yama:ptrace_scope=N`). */
export function ptraceScope (): number | null {
  const forced = testFlag('yama:ptrace_scope')
  if (forced !== undefined) return Number(forced)
  if (scope === undefined) {
    try {
      scope = Number(readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim())
    } catch {
      scope = null
    }
  }
  return scope
}

/** 'free': a reader may read us without a grant; 'grant': PR_SET_PTRACER is needed; else why cma is off. */
export function cmaAccess (): 'free' | 'grant' | string {
  const s = ptraceScope()
  if (s === null || s === 0) return 'free'
  if (s === 1) return process.env.PAGEGIFT_CMA_PTRACER === '1' ? 'grant' : 'cma: Yama ptrace_scope 1 needs PR_SET_PTRACER, which is off unless PAGEGIFT_CMA_PTRACER=1'
  return `cma: Yama ptrace_scope ${s} forbids it`
}

let holder: { pid: number, count: number } | undefined

/** Grants `pid` ptrace rights over us for one cma read; false when another reader holds the grant. */
export function grantPtracer (pid: number): boolean {
  if (holder !== undefined && holder.pid !== pid) return false
  if (holder === undefined) {
    const r = native.setPtracer(pid)
    // EINVAL means no Yama: nothing to grant. Anything else means the grant did not happen.
    if (r < 0 && new SystemError(r, 'prctl').code !== 'EINVAL') return false
    holder = { pid, count: 0 }
  }
  holder.count++
  return true
}

/** Undoes one grantPtracer(pid); the last one clears the tracer. */
export function revokePtracer (pid: number): void {
  if (holder === undefined || holder.pid !== pid) return
  if (--holder.count > 0) return
  holder = undefined
  native.setPtracer(0)
}
