/**
 * Waiting for a path to change hands: a successor binds the handoff socket path the moment its
 * predecessor renames it away (right after SERVING), woken by inotify rather than a polling timer,
 * since its first clients wait for that.
 */
import { watch } from 'node:fs'
import { basename, dirname } from 'node:path'

export interface PathWatch { next: (ms: number) => Promise<void>, close: () => void }

/** Wakes on any change to `path`'s directory entry (inotify), or after `ms` at the latest. */
export function watchPath (path: string): PathWatch {
  let wake: (() => void) | null = null
  let w: ReturnType<typeof watch> | null = null
  try {
    w = watch(dirname(path), { persistent: false }, (_, name) => { if (name === null || name === basename(path)) wake?.() })
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
