/**
 * The writer's half of the gift protocol. It offers a gift (with its memfds when the pages can
 * move), then serves whichever fallback the reader asks for, and settles when the reader is done.
 * A gift's sources stay pinned until every job that reads them has settled: a Done that arrives
 * while the writer still serves a path waits for that path to finish.
 */
import { PagegiftError, SystemError } from './errors.ts'
import { SPLICE_F_GIFT, native } from './native.ts'
import { cmaAccess, grantPtracer, revokePtracer } from './ptracer.ts'
import { Cancel, pump } from './pump.ts'
import { InlineBatcher, sendChunked, sendInline } from './gift-inline.ts'
import { Sources, type GiftData, type GiftPath, type GiftReceipt, PATHS } from './sources.ts'
import type { Transport } from './transport.ts'
import { INLINE_CHUNKED_MAX, INLINE_MAX, INLINE_MAX_PAGES, MAX_DATA, Type, obj, protocolError, str, uint, type Decoded } from './wire.ts'

export type { GiftReceipt } from './sources.ts'

export interface GiftOptions {
  /** JSON-serialisable data that travels with the gift. */
  meta?: unknown
  /** Force one path; a gift that cannot take it fails instead of falling back. */
  path?: GiftPath
  /** Fail the gift (ERR_PAGEGIFT_TIMEOUT) if the reader has not taken it within this many ms. */
  timeoutMs?: number
}

interface Pending {
  id: number
  sources: Sources
  forced?: GiftPath
  resolve: (r: GiftReceipt) => void
  reject: (err: Error) => void
  /** The move offer is in the kernel: from then on the pages are the reader's. */
  moveSent: boolean
  /** Paths the writer made readable ('cma') or finished serving ('splice', 'copy'). */
  served: Set<GiftPath>
  asked: Set<GiftPath>
  busy?: Promise<void>
  early?: { path: GiftPath, reason?: string }
  cancel: Cancel
  timer?: NodeJS.Timeout
  /** The pid we granted PR_SET_PTRACER for this gift. */
  tracer?: number
}

const PIPE_SIZE = 1 << 20
const NO_OPTIONS: GiftOptions = Object.freeze({})
/**
 * How much goes inline: memory whose pages could move, and any other (the crossover in wire.ts).
 * A gift with a timeout goes in one message at most, so that it can be taken back whole.
 */
const INLINE_LIMITS = Object.freeze({ pages: INLINE_MAX_PAGES, other: INLINE_CHUNKED_MAX })
const INLINE_NO_MOVE = Object.freeze({ pages: INLINE_MAX, other: INLINE_CHUNKED_MAX })
const INLINE_ONE_MESSAGE = Object.freeze({ pages: INLINE_MAX_PAGES, other: INLINE_MAX })
const INLINE_ONE_MESSAGE_NO_MOVE = Object.freeze({ pages: INLINE_MAX, other: INLINE_MAX })

let disabledRaw: string | undefined
let disabledSet = new Set<string>()

/** performance.now() when PAGEGIFT_DISABLE was last read. */
let disabledAt = -Infinity
/** How stale the parsed PAGEGIFT_DISABLE may be: reading process.env costs a small gift ~1.5 us. */
const DISABLED_REREAD_MS = 100

/**
 * Paths turned off for this process, e.g. PAGEGIFT_DISABLE=cma,splice where ptrace or vmsplice is
 * unwanted. Every gift asks, and reading process.env (a getenv and a new string) cost a small gift
 * 1.5 us of its ~6 us on the writer, once per turn of the event loop, which for single gifts is
 * once per gift. So the variable is read at most every 100 ms (a change takes effect within that)
 * and parsed again only when it changed.
 */
export function disabledPaths (): ReadonlySet<string> {
  const now = performance.now()
  if (now - disabledAt < DISABLED_REREAD_MS) return disabledSet
  disabledAt = now
  const raw = process.env.PAGEGIFT_DISABLE ?? ''
  if (raw !== disabledRaw) {
    disabledRaw = raw
    disabledSet = new Set(raw.split(',').map((s) => s.trim()).filter((s) => s !== ''))
  }
  return disabledSet
}

export function timeoutArg (ms: unknown, name: string): number | undefined {
  if (ms === undefined) return undefined
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0 || ms > 2 ** 31 - 1) throw new RangeError(`The "${name}" argument must be a number of milliseconds > 0 and < 2**31. Received ${String(ms)}`)
  return ms
}

export class GiftSender {
  #t: Transport
  #next = 1
  #pending = new Map<number, Pending>()
  #peerPid: () => number
  readonly #batch: InlineBatcher

  constructor (t: Transport, peerPid: () => number) {
    this.#t = t
    this.#peerPid = peerPid
    this.#batch = new InlineBatcher(t)
  }

  /** Sends the small gifts held for this turn now (before the channel closes). */
  flush (): void {
    this.#batch.flush()
  }

  /** Never throws: a bad argument rejects, as it would from an async function. */
  gift (data: GiftData, opts: GiftOptions = NO_OPTIONS): Promise<GiftReceipt> {
    try {
      return this.#gift(data, opts)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  #gift (data: GiftData, opts: GiftOptions): Promise<GiftReceipt> {
    if (opts === null || typeof opts !== 'object') throw new TypeError('The "opts" argument must be an object')
    const forced = opts.path
    if (forced !== undefined && !PATHS.includes(forced)) throw new TypeError(`The "opts.path" argument must be one of ${PATHS.join(', ')}. Received ${String(forced)}`)
    const timeoutMs = timeoutArg(opts.timeoutMs, 'opts.timeoutMs')
    let metaJson: string | undefined
    if (opts.meta !== undefined) {
      try {
        metaJson = JSON.stringify(opts.meta)
      } catch (err) {
        throw new TypeError(`The "opts.meta" argument must be JSON-serialisable: ${(err as Error).message}`)
      }
    }
    const disabled = disabledPaths()
    if (forced !== undefined && disabled.has(forced)) throw new PagegiftError('ERR_PAGEGIFT_PATH_UNAVAILABLE', `Cannot gift by the forced path '${forced}': disabled by PAGEGIFT_DISABLE`)
    if (this.#t.closed) throw new PagegiftError('ERR_PAGEGIFT_CLOSED', 'The channel is closed')
    // PAGEGIFT_DISABLE=copy turns off every path that puts the bytes in socket messages, inline too.
    const inlineMax = disabled.has('copy') || forced !== undefined
      ? undefined
      : timeoutMs !== undefined
        ? (disabled.has('move') ? INLINE_ONE_MESSAGE_NO_MOVE : INLINE_ONE_MESSAGE)
        : (disabled.has('move') ? INLINE_NO_MOVE : INLINE_LIMITS)
    // Held to share a message with others of this turn, unless it has a timeout: then it goes alone.
    const batched = inlineMax !== undefined && timeoutMs === undefined
    const sources = (batched ? this.#batch.takeSmall(data, inlineMax.pages) : undefined) ?? Sources.take(data, forced, inlineMax)
    const id = this.#next++
    if (sources.inline !== undefined) {
      if (sources.total > INLINE_MAX) return sendChunked(this.#t, id, sources, metaJson)
      return timeoutMs === undefined ? this.#batch.add(id, sources, metaJson) : sendInline(this.#t, id, sources, metaJson, timeoutMs)
    }
    const offer: Record<string, unknown> = {
      id,
      lengths: sources.lengths,
      meta: metaJson === undefined ? null : JSON.parse(metaJson),
      forced,
      why: [...sources.notes, sources.notMovable].filter((w) => w !== undefined).join('; ') || undefined,
    }
    let fds: number[] = []
    const served = new Set<GiftPath>()
    if (sources.notMovable === undefined && !disabled.has('move') && (forced === undefined || forced === 'move')) {
      const d = sources.moveDescriptor()
      offer.move = d.extents
      fds = d.fds
    } else {
      if (sources.notMovable === undefined) offer.why = forced !== undefined ? `path forced to '${forced}'` : 'move disabled by PAGEGIFT_DISABLE'
      // Offering the addresses up front saves the reader a round trip, where reading us needs no grant.
      if (!disabled.has('cma') && (forced === undefined || forced === 'cma') && cmaAccess() === 'free') {
        offer.cma = { pid: process.pid, iov: sources.addresses() }
        served.add('cma')
      }
    }
    const receipt = new Promise<GiftReceipt>((resolve, reject) => {
      const p: Pending = { id, sources, forced, resolve, reject, moveSent: false, served, asked: new Set(), cancel: new Cancel() }
      if (timeoutMs !== undefined) p.timer = setTimeout(() => this.#timeout(id, timeoutMs), timeoutMs)
      this.#pending.set(id, p)
    })
    // moveSent is set the moment the kernel has the offer: a queued offer may go out in the same
    // poll callback that then reads the reader's Done, before any promise reaction could run.
    this.#t.send(Type.Offer, offer, undefined, fds, () => {
      const p = this.#pending.get(id)
      if (p !== undefined && fds.length > 0) p.moveSent = true
    }).catch((err) => this.#fail(id, err as Error))
    return receipt
  }

  /** Handles a message addressed to the writer; returns false when it is not one. */
  handle (m: Decoded): boolean {
    if (m.type !== Type.Done && m.type !== Type.Need && m.type !== Type.Fail) return false
    const json = obj(m.json, 'reply')
    const id = uint(json.id, 'id')
    const p = this.#pending.get(id)
    if (p === undefined) return true // A reply for a gift that already failed on this side.
    if (m.type === Type.Done) {
      const reason = json.reason === undefined ? undefined : str(json.reason, 'reason')
      p.early = { path: pathOf(json.path), reason }
      if (p.busy === undefined) this.#settle(p)
    } else if (m.type === Type.Fail) {
      this.#fail(id, new PagegiftError(str(json.code, 'code', 100), `The reader failed the gift: ${str(json.message, 'message')}`), true)
    } else {
      this.#need(p, pathOf(json.path))
    }
    return true
  }

  /**
   * Serves one fallback path at a time, each at most once per gift: a reader cannot pile up jobs.
   * Skip and Cma replies are sent at once (no job reads the sources for them), so the reader's next
   * request may arrive before this returns to the event loop.
   */
  #need (p: Pending, path: GiftPath): void {
    if (p.busy !== undefined || p.asked.has(path) || p.early !== undefined) {
      this.#refuse(p, protocolError(`the reader asked for '${path}' while another request was open, or twice`))
      return
    }
    p.asked.add(path)
    let skip: string | undefined
    try {
      skip = this.#skipReason(p, path)
    } catch (err) {
      this.#refuse(p, err as Error)
      return
    }
    if (skip !== undefined || path === 'cma') {
      if (skip === undefined) p.served.add('cma')
      const reply = skip !== undefined ? this.#t.send(Type.Skip, { id: p.id, reason: skip }) : this.#t.send(Type.Cma, { id: p.id, pid: process.pid, iov: p.sources.addresses() })
      reply.catch((err) => this.#fail(p.id, err as Error))
      return
    }
    p.busy = (path === 'splice' ? this.#splice(p) : this.#copy(p)).then(() => {
      p.busy = undefined
      if (p.early !== undefined) this.#settle(p)
    }, (err) => {
      p.busy = undefined
      this.#refuse(p, err as Error)
    })
  }

  /** Why `path` cannot be served for this gift, or undefined; throws when the request is not allowed. */
  #skipReason (p: Pending, path: GiftPath): string | undefined {
    if (p.forced !== undefined && path !== p.forced) throw new PagegiftError('ERR_PAGEGIFT_PATH_UNAVAILABLE', `The reader asked for '${path}' but the path was forced to '${p.forced}'`)
    if (path === 'move') throw protocolError('the reader asked for \'move\' after the offer')
    if (disabledPaths().has(path)) return `${path} disabled by PAGEGIFT_DISABLE on the writer`
    return path === 'cma' ? this.#grant(p) : undefined
  }

  #refuse (p: Pending, err: Error): void {
    this.#t.send(Type.Fail, { id: p.id, to: 'reader', code: (err as PagegiftError).code ?? 'ERR_PAGEGIFT_WRITER', message: err.message }).catch(() => {})
    this.#fail(p.id, err)
  }

  /** The reader is done and our side has finished: the gift is delivered, if by a path we made possible. */
  #settle (p: Pending): void {
    if (this.#pending.get(p.id) !== p) return
    const { path, reason } = p.early as { path: GiftPath, reason?: string }
    const possible = path === 'move' ? p.moveSent : p.served.has(path)
    if (!possible) {
      this.#refuse(p, protocolError(`the reader reported delivery by '${path}', which this writer did not serve`))
      return
    }
    this.#forget(p)
    p.sources.release()
    p.resolve({ path, bytes: p.sources.total, ...(reason !== undefined ? { reason } : {}) })
  }

  async #copy (p: Pending): Promise<void> {
    for (const view of p.sources.views()) {
      for (let off = 0; off < view.byteLength; off += MAX_DATA) {
        p.cancel.check()
        await p.cancel.race(this.#t.send(Type.Data, { id: p.id }, view.subarray(off, off + MAX_DATA)))
      }
    }
    p.served.add('copy')
  }

  /** Makes cma possible for this gift's reader, or says why not. */
  #grant (p: Pending): string | undefined {
    const access = cmaAccess()
    if (access === 'free') return undefined
    if (access !== 'grant') return access
    const peer = this.#peerPid()
    if (peer <= 0 || peer === process.pid) return 'cma: the reader\'s pid is unknown, so PR_SET_PTRACER cannot name it'
    if (!grantPtracer(peer)) return 'cma: another reader holds PR_SET_PTRACER'
    p.tracer = peer
    return undefined
  }

  async #splice (p: Pending): Promise<void> {
    const pipe = native.pipe(PIPE_SIZE)
    if (typeof pipe === 'number') {
      await p.cancel.race(this.#t.send(Type.Skip, { id: p.id, reason: `pipe: ${new SystemError(pipe, 'pipe2').code}` }))
      return
    }
    const [readFd, writeFd] = pipe
    try {
      try {
        await p.cancel.race(this.#t.send(Type.Splice, { id: p.id }, undefined, [readFd]))
      } finally {
        native.close(readFd)
      }
      await pump('vmsplice', writeFd, p.sources.spans(), p.sources.total, p.cancel, SPLICE_F_GIFT)
      p.served.add('splice')
    } finally {
      native.close(writeFd)
    }
  }

  #timeout (id: number, ms: number): void {
    // A Done already in our socket settles the gift first: the reader may own the bytes by now.
    this.#t.drain()
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#refuse(p, new PagegiftError('ERR_PAGEGIFT_TIMEOUT', `The reader did not take the gift within ${ms} ms`))
  }

  #forget (p: Pending): void {
    this.#pending.delete(p.id)
    clearTimeout(p.timer)
    if (p.tracer !== undefined) revokePtracer(p.tracer)
    p.tracer = undefined
  }

  /**
   * Fails a gift. Its data comes back on the error once every job reading it has settled, unless
   * its pages were offered by move: those are the reader's (it may still take them after a close),
   * and only the reader's own Fail (`readerFailed`) says it holds none of them.
   */
  #fail (id: number, err: Error, readerFailed = false): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#forget(p)
    p.cancel.cancel(err)
    const given = p.moveSent && !readerFailed
    const out = err instanceof PagegiftError ? err : new PagegiftError((err as PagegiftError).code ?? 'ERR_PAGEGIFT_GIFT_FAILED', err.message, { cause: err })
    if (given) out.message += '; the pages were offered by move and are the reader\'s, so none come back'
    const finish = (): void => {
      if (given) {
        p.sources.release()
        out.buffers = []
      } else {
        out.buffers = p.sources.recover()
      }
      p.reject(out)
    }
    if (p.busy !== undefined) p.busy.then(finish, finish)
    else finish()
  }

  /** The channel closed: every pending gift fails, and its data is handed back on the error. */
  abort (err: Error): void {
    this.#batch.abort(err)
    for (const id of [...this.#pending.keys()]) {
      this.#fail(id, new PagegiftError((err as PagegiftError).code ?? 'ERR_PAGEGIFT_CLOSED', `The gift was not delivered: ${err.message}`, { cause: err }))
    }
  }
}

function pathOf (x: unknown): GiftPath {
  if (typeof x !== 'string' || !PATHS.includes(x as GiftPath)) throw protocolError(`unknown path ${String(x)}`)
  return x as GiftPath
}
