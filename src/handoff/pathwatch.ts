/**
 * The handoff socket path changing hands. A successor that sent SERVING binds its own socket beside
 * the path and renames it over the path, so the path names a live listener throughout (the
 * predecessor's, then the successor's) and the successor's ready(), which its first clients wait
 * for, never waits for the predecessor to let go. The predecessor closes its own socket once the
 * path has moved, which it polls for.
 */
import { lstatSync, renameSync, watch } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { Env, HandoffServer } from './env.ts'

const SIDE = '.new'

/** True when a name beside `path` still fits a Unix socket address; otherwise the path is handed over the old way (predecessor renames it away, successor binds). */
export const canSwap = (path: string): boolean => Buffer.byteLength(path + SIDE) <= 107

/** The inode `path` names, or null if nothing. */
export function inodeAt (path: string): number | null {
  try { return lstatSync(path).ino } catch { return null }
}

/** Where a successor binds its socket before it is renamed over `path`, or null if that name would not fit. */
export const sidePath = (path: string): string | null => canSwap(path) ? path + SIDE : null

/**
 * Successor, after SERVING went out (the path is ours from then on): our socket, renamed over the
 * path. `bound` is the socket inherit() bound at sidePath() before the pause, if it could.
 */
export async function swapIn (env: Env, path: string, bound: HandoffServer | null = null): Promise<HandoffServer> {
  const side = path + SIDE
  // A stale file there (a successor that died here) is replaced by listen(); a live one cannot exist: one successor commits at a time.
  const server = bound ?? await env.listen(side)
  try {
    renameSync(side, path)
  } catch (err) {
    await server.close()
    throw err
  }
  return server
}

/**
 * Predecessor: waits, up to `ms`, until `path` no longer names the socket with inode `ino`, looking
 * after 1, 2, 4 ... ms (at most 50 ms apart). Not inotify: adding a watch on a directory walks every
 * dentry it has cached, in the kernel and without a preemption point (a kernel without forced
 * preemption does not take the CPU back), and a /tmp with a thousand entries held a CPU for 1 to 2 ms
 * there, right after SERVING, with the successor's first clients waiting for it.
 */
export async function untilMoved (path: string, ino: number | null, ms: number): Promise<void> {
  const until = Date.now() + ms
  for (let wait = 1; ino !== null && inodeAt(path) === ino && Date.now() < until; wait = Math.min(wait * 2, 50)) {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(wait, until - Date.now()))))
  }
}

export interface PathWatch { next: (ms: number) => Promise<void>, close: () => void }

/** Wakes on any change to `path`'s directory entry (inotify), or after `ms` at the latest. */
export function watchPath (path: string): PathWatch {
  let wake: (() => void) | null = null
  let w: ReturnType<typeof watch> | null = null
  try {
    w = watch(dirname(path), { persistent: false }, (_, name) => { if (name === null || name === basename(path) || name === basename(path) + SIDE) wake?.() })
    w.on('error', () => {})
  } catch {
    // No inotify (limits reached, say): the timer alone.
  }
  return {
    next: async (ms) => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { wake = null; resolve() }, ms)
        wake = () => { clearTimeout(timer); wake = null; resolve() }
      })
    },
    close: () => { w?.close() },
  }
}
