/**
 * A Generation is one process's membership in a service's line of versions, and the handoff's one
 * state machine. It owns the phase and, with it, the one-at-a-time lock:
 *
 *   joined --ready()--> serving --admitted HELLO--> handing-off --SERVING--> draining --> handed-off
 *                          ^                             |
 *                          +------ resumed (rollback) ---+
 *
 * The two sides of a handoff are protocol functions (predecessor.ts, successor.ts) that take the
 * OS layer, the channel and what this class decided, and return what happened.
 */
import { EventEmitter } from 'node:events'
import { renameSync, unlinkSync } from 'node:fs'
import { PagegiftError } from '../errors.ts'
import { Contributors, type Offerer, type SocketOfferer, type Quiescer } from './contributors.ts'
import type { Env, HandoffChannel, HandoffServer } from './env.ts'
import { ensureKey, keyMatches } from './key.ts'
import { code, handOff, type HandoffJob } from './predecessor.ts'
import { LIMITS, MIN_PROTOCOL_VERSION, msg, negotiate, parseFirst, type HelloMsg } from './protocol.ts'
import { takeOver, type Inheritance } from './successor.ts'
import type { HandedOffInfo, HandoffRecord, Inherited, JoinOptions, StatusReport } from './types.ts'
import { canSwap, inodeAt, swapIn, untilMoved, watchPath, type PathWatch } from './pathwatch.ts'
import { boundStatus } from './report.ts'
import { Watchers } from './watchers.ts'

export const DEFAULT_TIMEOUT_MS = 10_000
const DEFAULT_HELLO_TIMEOUT_MS = 2_000
const DEFAULT_PAUSE_BUDGET_MS = 500
const RETRY_LISTEN = new Set(['EADDRINUSE', 'ENOENT', 'EAGAIN'])

export type Phase = 'joined' | 'serving' | 'handing-off' | 'draining' | 'handed-off' | 'closed'

export interface Generation {
  on (event: 'resumed', fn: (err: Error) => void): this
  on (event: 'handedOff', fn: (info: HandedOffInfo) => void): this
  on (event: 'error', fn: (err: Error) => void): this
}

export class Generation extends EventEmitter {
  /** 1 for the first process, +1 per handoff. */
  readonly generation: number
  /** What the predecessor handed over, or null for the first generation. */
  readonly inherited: Inherited | null
  readonly path: string
  readonly version: string
  #env: Env
  #opts: Required<Pick<JoinOptions, 'timeoutMs' | 'helloTimeoutMs' | 'exitOnHandoff' | 'pauseBudgetMs' | 'layouts'>>
  #inheritance: Inheritance | null
  #phase: Phase = 'joined'
  /** The successor a handoff runs with: the lock, held from an admitted HELLO to the outcome. */
  #successor: number | null = null
  #contributors = new Contributors()
  /** onServing functions, run once as this generation starts serving. */
  #onServing: Array<() => void> = []
  #watchers: Watchers
  #server: HandoffServer | null = null
  #history: HandoffRecord[]
  #startedAt = new Date()
  #key = ''
  /** The inode of our socket at `path` (to tell whether a successor has put its own there). */
  #pathIno: number | null = null

  constructor (path: string, env: Env, opts: JoinOptions, inheritance: Inheritance | null) {
    super()
    this.path = path
    this.version = opts.version ?? ''
    this.#env = env
    this.#opts = {
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      helloTimeoutMs: opts.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS,
      exitOnHandoff: opts.exitOnHandoff ?? true,
      pauseBudgetMs: opts.pauseBudgetMs ?? DEFAULT_PAUSE_BUDGET_MS,
      layouts: opts.layouts ?? {},
    }
    this.#inheritance = inheritance
    this.#watchers = new Watchers(env)
    this.generation = inheritance?.state.generation ?? 1
    this.inherited = inheritance?.inherited ?? null
    this.#history = inheritance?.history ?? []
  }

  /**
   * Adds a function that quiesces (part of) this generation and returns the state to hand over.
   * Several contributors add up: their regions, handles and meta are merged (a name given twice is
   * an error), and they run in the order they were added.
   */
  onHandoff (fn: Quiescer): this {
    if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be a function')
    this.#contributors.addQuiescer(fn)
    return this
  }

  /**
   * Adds regions to offer a successor as soon as it says HELLO, while this generation still serves.
   * The successor maps them then, so the pause does not grow with their size. Return the same
   * ArrayBuffers (under the same names) from onHandoff to hand them over; offered regions that
   * onHandoff leaves out are dropped by the successor. Writing to them after the offer is fine until
   * onHandoff returns: the successor maps the very same pages and reads them only after COMMIT.
   */
  offerRegions (fn: Offerer): this {
    if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be a function')
    this.#contributors.addOfferer(fn)
    return this
  }

  /**
   * Adds connections to offer a successor with the regions, while this generation still serves them:
   * the successor wraps each (a net.Socket over a dup of its fd, reading nothing) before the pause,
   * instead of inside it. Export the same sockets under the same names from onHandoff
   * (`exportSocket`): those travel as "offered", without their fds; a name whose socket closed or
   * changed meanwhile travels as usual, and offered connections that onHandoff leaves out are closed
   * by the successor. Serving a connection after its offer is fine: the successor reads nothing of it
   * before COMMIT. A successor of the previous release (protocol version 2) is offered none.
   */
  offerSockets (fn: SocketOfferer): this {
    if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be a function')
    this.#contributors.addSocketOfferer(fn)
    return this
  }

  /**
   * Adds a function run once, synchronously, the moment this generation starts serving: in a
   * successor, as its gate opens (SERVING went out, adopted servers listen, adopted connections
   * read), before ready() resolves; in a first generation, when ready() is called. Answer the
   * inherited connections' held requests here rather than after `await ready()`: ready() has more
   * to do after the gate opens (taking over the handoff socket path for our own successors), and
   * none of it need be on the clients' path. Must be added before ready(). The handoff has
   * committed by then, so an error thrown here is emitted as 'error' (a warning if nobody listens).
   */
  onServing (fn: () => void): this {
    if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be a function')
    if (this.#phase !== 'joined') throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_STATE', `onServing() must be added before ready() (phase: ${this.#phase})`)
    this.#onServing.push(fn)
    return this
  }

  /** The generation serves from here on (a successor's gate has just opened): its onServing functions run. */
  #serving (): void {
    this.#phase = 'serving'
    for (const fn of this.#onServing.splice(0)) {
      try {
        fn()
      } catch (err) {
        this.#report(err as Error, 'an onServing function failed')
      }
    }
  }

  /** An error past the commit point: nothing to roll back, so the app hears of it ('error', or a warning). */
  #report (err: Error, what: string): void {
    if (this.listenerCount('error') > 0) this.emit('error', err)
    else process.emitWarning(`pagegift handoff: ${what}: ${err.message}`)
  }

  /**
   * Successor: sends READY (the commit point), waits for COMMIT, says SERVING, then starts its
   * adopted servers and connections and runs the onServing functions. Every generation then
   * listens for its own successor.
   */
  async ready (): Promise<void> {
    if (this.#phase !== 'joined') throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_STATE', `ready() was already called (phase: ${this.#phase})`)
    const inh = this.#inheritance
    if (inh !== null) {
      try {
        // takeOver() calls #serving() as the gate opens, then lets the loop poll once before it returns.
        this.#history.push(await takeOver(this.#env, inh, this.#opts.timeoutMs, { generation: this.generation, version: this.version }, () => this.#serving()))
      } catch (err) {
        this.#phase = 'closed'
        await inh.side?.close()
        throw err
      }
      this.#trimHistory()
    } else {
      this.#serving()
    }
    try {
      // A successor has the key join() read: reading the file again would cost its first clients the system calls.
      this.#key = inh?.key ?? ensureKey(this.path)
      // A successor swaps its socket in over the predecessor's (pathwatch.ts): its clients wait for ready().
      // A version-1 predecessor renames the path away itself once it has SERVING: a swap would race it, so we bind after it.
      const swap = inh !== null && inh.v >= 2 && canSwap(this.path)
      if (inh !== null && !swap) await inh.side?.close()
      this.#server = await (inh === null ? this.#listen(0) : swap ? swapIn(this.#env, this.path, inh.side) : this.#listen(this.#opts.timeoutMs))
      this.#pathIno = inodeAt(this.path)
    } catch (err) {
      if (inh === null) throw err
      // We committed and serve; only our own successors cannot reach us. Say so, but do not fail.
      this.#report(err as Error, `serving, but cannot listen on ${this.path} for successors`)
      return
    }
    this.#server.on('connection', (ch) => { void this.#onConnection(ch) })
  }

  /** Stops accepting successors and closes watchers; the process keeps serving its own clients. */
  async close (): Promise<void> {
    // Closed before ready(): the socket inherit() bound beside the path is nobody's.
    if (this.#phase === 'joined') await this.#inheritance?.side?.close()
    if (this.#phase !== 'handed-off' && this.#phase !== 'draining') this.#phase = 'closed'
    this.#watchers.close()
    const server = this.#server
    this.#server = null
    await server?.close()
  }

  /** What `pagegift status` shows (as sent, it is bounded to fit in one message: report.ts). */
  status (): StatusReport {
    const inh = this.inherited
    const state = this.#phase === 'handing-off' || this.#phase === 'draining' || this.#phase === 'handed-off' ? this.#phase : 'serving'
    let offered: Record<string, ArrayBuffer> = {}
    try { offered = this.#contributors.offer() } catch {}
    return {
      generation: this.generation,
      pid: this.#env.pid,
      version: this.version,
      startedAt: this.#startedAt.toISOString(),
      uptimeMs: Date.now() - this.#startedAt.getTime(),
      state,
      regions: Object.entries(Object.keys(offered).length > 0 ? offered : inh?.regions ?? {}).map(([name, b]) => ({ name, bytes: b.byteLength })),
      handles: Object.entries(inh?.handles ?? {}).map(([name, h]) => ({ name, kind: h.kind })),
      history: [...this.#history],
    }
  }

  /** One connection to the handoff socket: a status request, a watch, or a HELLO. Never throws. */
  async #onConnection (ch: HandoffChannel): Promise<void> {
    let first: { msg: unknown, fds: number[] }
    try {
      first = await ch.recv({ timeoutMs: this.#opts.helloTimeoutMs })
    } catch {
      ch.close()
      return
    }
    for (const fd of first.fds) this.#env.closeFd(fd)
    let v = MIN_PROTOCOL_VERSION
    try {
      const m = parseFirst(first.msg)
      v = negotiate(m.max)
      if (m.t === 'status') {
        await ch.send(msg.status(v, boundStatus(this.status())))
        ch.close()
      } else if (m.t === 'watch') {
        this.#watchers.add(ch, v, keyMatches(this.#key, m.key))
        await ch.send(msg.status(v, boundStatus(this.status())))
      } else {
        this.#admit(m)
        await this.#handOff(ch, m, v)
      }
    } catch (err) {
      await ch.send(msg.refused(v, code(err), (err as Error).message)).catch(() => {})
      ch.close()
    }
  }

  /** Refuses a HELLO that may not start a handoff, before anything is offered or paused. */
  #admit (hello: HelloMsg): void {
    if (!keyMatches(this.#key, hello.key)) {
      const why = hello.max === undefined ? 'it speaks protocol version 1, which has no key (a downgrade to the previous release is not supported)' : hello.key === undefined ? 'it presented none' : 'it presented another one'
      throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_KEY', `only a successor with this service's key may take over (join() reads it from the key file beside the handoff socket); ${why}`)
    }
    if (this.#successor !== null) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_BUSY', `a handoff to pid ${this.#successor} is already running; only one successor at a time`)
    if (this.#phase !== 'serving') throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_STATE', `generation ${this.generation} is ${this.#phase}`)
    if (this.#watchers.fenced) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_CANCELLED', 'pagegift upgrade cancelled the upgrade it started; no successor may take over until it exits')
    if (!this.#contributors.canHandOff) throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_UNSUPPORTED', `generation ${this.generation} (pid ${this.#env.pid}) has no onHandoff handler`)
  }

  /** serving -> handing-off -> (serving | draining -> handed-off). */
  async #handOff (ch: HandoffChannel, hello: HelloMsg, v: number): Promise<void> {
    this.#phase = 'handing-off'
    this.#successor = hello.pid
    this.#watchers.broadcast({ event: 'start', pid: hello.pid, version: hello.version })
    const job: HandoffJob = {
      hello,
      v,
      generation: this.generation,
      version: this.version,
      timeoutMs: this.#opts.timeoutMs,
      pauseBudgetMs: this.#opts.pauseBudgetMs,
      layouts: Object.fromEntries(Object.entries(this.#opts.layouts).map(([name, l]) => [name, l.version])),
      history: [...this.#history],
      offer: () => this.#contributors.offer(),
      offerSockets: () => this.#contributors.offerSockets(),
      quiesce: async (successor) => await this.#contributors.quiesce(successor),
      fenced: () => this.#watchers.fenced,
      event: (e) => this.#watchers.broadcast(e),
    }
    const result = await handOff(this.#env, ch, job)
    if (result.outcome === 'resumed') {
      this.#phase = 'serving'
      this.#successor = null
      const err = result.error
      this.#watchers.broadcast({ event: 'resumed', reason: err.message, code: code(err), ...(result.afterCommit ? { afterCommit: true } : {}) })
      this.emit('resumed', err)
      if (result.afterCommit) await this.#reclaimPath()
      return
    }
    // Past SERVING this process only winds down: on a busy host that must not take the CPU from the
    // successor's first answers. Clients whose output it still flushes wait on it, so not before they have it.
    if (!result.draining) this.#windDown()
    await this.#retire(v).catch(() => {})
    this.#phase = 'draining'
    this.#history.push(result.record)
    this.#trimHistory()
    await this.#watchers.committed(result.record)
    this.emit('handedOff', result.record)
    await result.drain()
    this.#windDown()
    this.#phase = 'handed-off'
    if (this.#opts.exitOnHandoff) setImmediate(() => process.exit(0))
  }

  /** Takes the socket path; a successor waits (up to `retryMs`) for its predecessor to let go of it after SERVING. */
  async #listen (retryMs: number): Promise<HandoffServer> {
    const until = Date.now() + retryMs
    let moved: PathWatch | null = null
    try {
      for (;;) {
        try {
          return await this.#env.listen(this.path)
        } catch (err) {
          // EADDRINUSE: it still listens. ENOENT, EAGAIN: our probe met it in the middle of retiring.
          if (!RETRY_LISTEN.has((err as { code?: string }).code ?? '') || Date.now() >= until) throw err
          // Woken by its rename (inotify), not a timer; watching starts before the next try.
          if (moved === null) moved = watchPath(this.path)
          else await moved.next(2)
        }
      }
    } finally {
      moved?.close()
    }
  }

  /**
   * Lets go of the path after SERVING. A successor of this version swaps its socket in over it: ours
   * closes once it has (close() unlinks only a path still naming ours). Otherwise it binds after we
   * let go, and a close would race its bind, so the file is renamed away (atomic) first.
   */
  async #retire (v: number): Promise<void> {
    const server = this.#server
    this.#server = null
    if (server === null) return
    if (v >= 2 && canSwap(this.path)) {
      await untilMoved(this.path, this.#pathIno, this.#opts.timeoutMs)
      await server.close()
      return
    }
    const retired = `${this.path}.${this.#env.pid}.retired`
    let moved = true
    try { renameSync(this.path, retired) } catch { moved = false }
    await server.close()
    if (moved) { try { unlinkSync(retired) } catch {} }
  }

  /** Resumed after COMMIT: a successor that died after SERVING may have left its socket over our path; ours goes back. */
  async #reclaimPath (): Promise<void> {
    if (this.#server === null || inodeAt(this.path) === this.#pathIno) return
    await this.#server.close()
    try {
      this.#server = await this.#listen(0)
      this.#pathIno = inodeAt(this.path)
      this.#server.on('connection', (ch) => { void this.#onConnection(ch) })
    } catch (err) {
      this.#server = null
      process.emitWarning(`pagegift handoff: serving again, but cannot listen on ${this.path} for successors: ${(err as Error).message}`)
    }
  }

  /** Lowers this process's priority for good (it cannot be raised again), only when it is about to exit. */
  #windDown (): void {
    if (this.#opts.exitOnHandoff) this.#env.yieldCpu()
  }

  #trimHistory (): void {
    if (this.#history.length > LIMITS.history) this.#history.splice(0, this.#history.length - LIMITS.history)
  }
}
