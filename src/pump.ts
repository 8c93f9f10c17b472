/**
 * What the copying paths share: spans of memory handed to the addon, a way to cancel waits, and the
 * pipe pump. A pump moves bytes through a pipe in non-blocking passes on the threadpool and waits for
 * pipe readiness on the event loop between passes, so a peer that never reads (or never writes) its
 * pipe holds no thread and is stopped by a cancel (channel closed, timeout).
 */
import { SystemError } from './errors.ts'
import { AsyncOp, PollEvents, flatSpans, native, type Span } from './native.ts'
import { regionOf } from './pages.ts'

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

/**
 * From this size a pull is split between two threadpool threads. With warm targets (the receive
 * pool, or an `into`) two threads copy 4 MiB in 1.39-1.49 ms against 1.45-1.88 ms for one, and
 * 16 MiB in 2.6-3.3 ms against 4.1-5.2 ms (this VM, Buffer sources, two runs each).
 */
const PARALLEL_PULL_BYTES = 2 << 20

/**
 * process_vm_readv of `total` bytes, on the threadpool. Never on the event loop, however small: the
 * writer names the pages, and a writer that names pages whose fault waits on it (a FUSE file it
 * serves) would stall the loop for as long as it likes. A large pull is split in two halves read by
 * two threads at once: the syscall pins and copies page by page, and one thread leaves bandwidth unused.
 */
export async function pull (pid: number, local: Span[], remote: Float64Array, total: number): Promise<number> {
  const read = (l: Span[], r: Float64Array): Promise<number> => native.async(AsyncOp.VmRead, pid, 0, flatSpans(l), r)
  if (total < PARALLEL_PULL_BYTES) return await read(local, remote)
  const half = Math.floor(total / 2)
  const [r1, r2] = splitIov(remote, half)
  const [a, b] = await Promise.all([read(sliceSpans(local, 0, half), r1), read(sliceSpans(local, half), r2)])
  if (a < 0) return a
  if (b < 0) return b
  return a + b
}

/** Splits the peer's [address, length] pairs at byte `at` into the pairs before and after it. */
function splitIov (iov: Float64Array, at: number): [Float64Array, Float64Array] {
  const head: number[] = []
  const tail: number[] = []
  for (let i = 0; i < iov.length; i += 2) {
    const [addr, len] = [iov[i], iov[i + 1]]
    const n = Math.max(0, Math.min(len, at))
    if (n > 0) head.push(addr, n)
    if (len > n) tail.push(addr + n, len - n)
    at -= n
  }
  return [new Float64Array(head), new Float64Array(tail)]
}

/** Spans covering the first `total` bytes of the views; giftable memory goes by its mapping handle. */
export function spansOf (views: Uint8Array[], total: number): Span[] {
  const out: Span[] = []
  for (const v of views) {
    if (total === 0) break
    const n = Math.min(total, v.byteLength)
    const region = regionOf(v.buffer)
    out.push(region !== undefined ? [region.handle, v.byteOffset, n] : [v, 0, n])
    total -= n
  }
  return out
}

/**
 * Fills `views` in order from chunks that need not line up with them: returns the function to call
 * with each chunk. The caller bounds the total; a chunk past the last view's end is a bug there.
 */
export function scatter (views: Uint8Array[]): (chunk: Uint8Array) => void {
  let v = 0
  let at = 0
  return (chunk) => {
    while (chunk.byteLength > 0) {
      const n = Math.min(chunk.byteLength, views[v].byteLength - at)
      views[v].set(chunk.subarray(0, n), at)
      chunk = chunk.subarray(n)
      at += n
      if (at === views[v].byteLength) { v++; at = 0 }
    }
  }
}
