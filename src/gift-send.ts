/**
 * The writer's half of the gift protocol. It offers a gift (with its memfds when the pages can
 * move), then serves whichever fallback the reader asks for, and settles when the reader is done.
 */
import { PagegiftError, SystemError } from './errors.ts'
import { AsyncOp, SPLICE_F_GIFT, native } from './native.ts'
import { Sources, type GiftData, type GiftPath, PATHS } from './sources.ts'
import type { Transport } from './transport.ts'
import { MAX_DATA, Type, obj, str, uint, type Decoded } from './wire.ts'

export interface GiftReceipt {
  /** The path the bytes took: 'move' (no copy), 'cma' or 'splice' (one copy), or 'copy'. */
  path: GiftPath
  bytes: number
  /** Why a better path was not taken. */
  reason?: string
}

export interface GiftOptions {
  /** JSON-serialisable data that travels with the gift. */
  meta?: unknown
  /** Force one path; a gift that cannot take it fails instead of falling back. */
  path?: GiftPath
}

interface Pending {
  sources: Sources
  forced?: GiftPath
  resolve: (r: GiftReceipt) => void
  reject: (err: Error) => void
}

const PIPE_SIZE = 1 << 20

/** Paths turned off for this process, e.g. PAGEGIFT_DISABLE=cma,splice where ptrace or vmsplice is unwanted. */
export function disabledPaths (): Set<string> {
  return new Set((process.env.PAGEGIFT_DISABLE ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))
}

export class GiftSender {
  #t: Transport
  #next = 1
  #pending = new Map<number, Pending>()

  #peerPid: () => number

  constructor (t: Transport, peerPid: () => number) {
    this.#t = t
    this.#peerPid = peerPid
  }

  async gift (data: GiftData, opts: GiftOptions = {}): Promise<GiftReceipt> {
    if (opts === null || typeof opts !== 'object') throw new TypeError('The "opts" argument must be an object')
    const forced = opts.path
    if (forced !== undefined && !PATHS.includes(forced)) throw new TypeError(`The "opts.path" argument must be one of ${PATHS.join(', ')}. Received ${String(forced)}`)
    let metaJson: string | undefined
    try {
      metaJson = JSON.stringify(opts.meta)
    } catch (err) {
      throw new TypeError(`The "opts.meta" argument must be JSON-serialisable: ${(err as Error).message}`)
    }
    const disabled = disabledPaths()
    if (forced !== undefined && disabled.has(forced)) throw new PagegiftError('ERR_PAGEGIFT_PATH_UNAVAILABLE', `Cannot gift by the forced path '${forced}': disabled by PAGEGIFT_DISABLE`)
    if (this.#t.closed) throw new PagegiftError('ERR_PAGEGIFT_CLOSED', 'The channel is closed')
    const sources = Sources.take(data, forced)
    const id = this.#next++
    const offer: Record<string, unknown> = {
      id,
      lengths: sources.lengths,
      meta: metaJson === undefined ? null : JSON.parse(metaJson),
      forced,
      why: [...sources.notes, sources.notMovable].filter((w) => w !== undefined).join('; ') || undefined,
    }
    let fds: number[] = []
    if (sources.notMovable === undefined && !disabled.has('move') && (forced === undefined || forced === 'move')) {
      const d = sources.moveDescriptor()
      offer.move = d.extents
      fds = d.fds
    } else {
      if (sources.notMovable === undefined) offer.why = forced !== undefined ? `path forced to '${forced}'` : 'move disabled by PAGEGIFT_DISABLE'
      // Offering the addresses up front saves the reader a round trip when it can read them.
      if (!disabled.has('cma') && (forced === undefined || forced === 'cma')) offer.cma = this.#cmaDescriptor(sources)
    }
    const receipt = new Promise<GiftReceipt>((resolve, reject) => this.#pending.set(id, { sources, forced, resolve, reject }))
    this.#t.send(Type.Offer, offer, undefined, fds).catch((err) => this.#fail(id, err as Error))
    return receipt
  }

  #cmaDescriptor (sources: Sources): { pid: number, iov: number[] } {
    // Under Yama ptrace_scope 1 the reader may read us only once we name it; without Yama this is a no-op.
    const peer = this.#peerPid()
    if (peer > 0 && peer !== process.pid) native.setPtracer(peer)
    return { pid: process.pid, iov: sources.iov() }
  }

  /** Handles a message addressed to the writer; returns false when it is not one. */
  handle (m: Decoded): boolean {
    if (m.type !== Type.Done && m.type !== Type.Need && m.type !== Type.Fail) return false
    const json = obj(m.json, 'reply')
    const id = uint(json.id, 'id')
    const p = this.#pending.get(id)
    if (p === undefined) return true // A reply for a gift that already failed on this side.
    if (m.type === Type.Done) {
      this.#pending.delete(id)
      p.sources.release()
      const reason = json.reason === undefined ? undefined : str(json.reason, 'reason')
      p.resolve({ path: pathOf(json.path), bytes: p.sources.total, ...(reason !== undefined ? { reason } : {}) })
    } else if (m.type === Type.Fail) {
      this.#fail(id, new PagegiftError(str(json.code, 'code', 100), `The reader failed the gift: ${str(json.message, 'message')}`))
    } else {
      this.#serve(id, p, pathOf(json.path)).catch((err) => {
        this.#t.send(Type.Fail, { id, to: 'reader', code: (err as PagegiftError).code ?? 'ERR_PAGEGIFT_WRITER', message: (err as Error).message }).catch(() => {})
        this.#fail(id, err as Error)
      })
    }
    return true
  }

  async #serve (id: number, p: Pending, path: GiftPath): Promise<void> {
    if (p.forced !== undefined && path !== p.forced) throw new PagegiftError('ERR_PAGEGIFT_PATH_UNAVAILABLE', `The reader asked for '${path}' but the path was forced to '${p.forced}'`)
    if (disabledPaths().has(path)) {
      await this.#t.send(Type.Skip, { id, reason: `${path} disabled by PAGEGIFT_DISABLE on the writer` })
      return
    }
    if (path === 'cma') {
      await this.#t.send(Type.Cma, { id, ...this.#cmaDescriptor(p.sources) })
    } else if (path === 'splice') {
      await this.#splice(id, p.sources)
    } else if (path === 'copy') {
      for (const view of p.sources.views()) {
        for (let off = 0; off < view.byteLength; off += MAX_DATA) {
          if (!this.#pending.has(id)) return
          await this.#t.send(Type.Data, { id }, view.subarray(off, off + MAX_DATA))
        }
      }
    } else {
      throw new PagegiftError('ERR_PAGEGIFT_PROTOCOL', `The reader asked for '${path}' after the offer`)
    }
  }

  async #splice (id: number, sources: Sources): Promise<void> {
    const pipe = native.pipe(PIPE_SIZE)
    if (typeof pipe === 'number') {
      await this.#t.send(Type.Skip, { id, reason: `pipe: ${new SystemError(pipe, 'pipe2').code}` })
      return
    }
    const [readFd, writeFd] = pipe
    try {
      await this.#t.send(Type.Splice, { id }, undefined, [readFd])
    } finally {
      native.close(readFd)
    }
    // vmsplice blocks while the pipe is full, so it runs on the threadpool; `sources` keeps the memory mapped until the gift settles.
    const iov = new Float64Array(sources.iov())
    const r = await native.async(AsyncOp.Vmsplice, writeFd, SPLICE_F_GIFT, 0, 0, iov, null)
    native.close(writeFd)
    if (r < 0) throw new SystemError(r, 'vmsplice')
  }

  #fail (id: number, err: Error): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#pending.delete(id)
    const out = err instanceof PagegiftError ? err : new PagegiftError((err as PagegiftError).code ?? 'ERR_PAGEGIFT_GIFT_FAILED', err.message, { cause: err })
    out.buffers = p.sources.recover()
    p.reject(out)
  }

  /** The channel closed: every pending gift fails, and its data is handed back on the error. */
  abort (err: Error): void {
    for (const id of [...this.#pending.keys()]) {
      this.#fail(id, new PagegiftError((err as PagegiftError).code ?? 'ERR_PAGEGIFT_CLOSED', `The gift was not delivered: ${err.message}`, { cause: err }))
    }
  }
}

function pathOf (x: unknown): GiftPath {
  if (typeof x !== 'string' || !PATHS.includes(x as GiftPath)) throw new PagegiftError('ERR_PAGEGIFT_PROTOCOL', `Malformed message from peer: unknown path ${String(x)}`)
  return x as GiftPath
}
