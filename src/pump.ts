/**
 * What the copying paths share: spans of memory handed to the addon, a way to cancel waits, and the
 * pipe pump. A pump moves bytes through a pipe in non-blocking passes on the threadpool and waits for
 * pipe readiness on the event loop between passes, so a peer that never reads (or never writes) its
 * pipe holds no thread and is stopped by a cancel (channel closed, timeout).
 */
import { SystemError } from './errors.ts'
import { AsyncOp, PollEvents, flatSpans, native, type Span } from './native.ts'

/** Cancels waits: once cancel(err) is called, every current and later race() rejects with err. */
export class Cancel {
  reason?: Error
  readonly #listeners = new Set<(err: Error) => void>()

  cancel (err: Error): void {
    if (this.reason !== undefined) return
    this.reason = err
    for (const listener of this.#listeners) listener(err)
    this.#listeners.clear()
  }

  check (): void {
    if (this.reason !== undefined) throw this.reason
  }

  /** Settles as `p` does, or rejects as soon as this is cancelled. */
  race<T> (p: Promise<T>): Promise<T> {
    if (this.reason !== undefined) {
      p.catch(() => {})
      return Promise.reject(this.reason)
    }
    return new Promise<T>((resolve, reject) => {
      this.#listeners.add(reject)
      p.then((v) => { this.#listeners.delete(reject); resolve(v) }, (e) => { this.#listeners.delete(reject); reject(e) })
    })
  }
}

/** The bytes [from, to) of a list of spans, as spans. */
export function sliceSpans (spans: Span[], from: number, to = Infinity): Span[] {
  const out: Span[] = []
  let pos = 0
  for (const [memory, offset, length] of spans) {
    const start = Math.max(from, pos)
    const end = Math.min(to, pos + length)
    if (start < end) out.push([memory, offset + start - pos, end - start])
    pos += length
  }
  return out
}

/**
 * Moves `total` bytes between `spans` and the pipe `fd`: vmsplice into it (`flags`, e.g.
 * SPLICE_F_GIFT) or read from it. Resolves when every byte has moved; rejects with a SystemError,
 * or with the cancel's reason. The caller owns and closes `fd`.
 */
export async function pump (direction: 'vmsplice' | 'read', fd: number, spans: Span[], total: number, cancel: Cancel, flags = 0): Promise<void> {
  const op = direction === 'read' ? AsyncOp.Read : AsyncOp.Vmsplice
  const events = direction === 'read' ? PollEvents.Readable | PollEvents.Disconnect : PollEvents.Writable
  let wake: () => void = () => {}
  const poll = native.pollStart(fd, 0, () => { native.pollUpdate(poll as never, 0); wake() })
  if (typeof poll === 'number') throw new SystemError(poll, 'uv_poll_init')
  try {
    let done = 0
    for (;;) {
      // One pass is bounded by the pipe's capacity, so it is never cancelled midway: it ends soon.
      const r = await native.async(op, fd, flags, flatSpans(sliceSpans(spans, done, total)), null)
      if (r < 0) throw new SystemError(r, direction === 'read' ? 'read' : 'vmsplice')
      done += r
      if (done >= total) return
      cancel.check()
      await cancel.race(new Promise<void>((resolve) => {
        wake = resolve
        native.pollUpdate(poll, events)
      }))
    }
  } finally {
    native.pollClose(poll)
  }
}
