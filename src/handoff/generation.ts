/**
 * A Generation is one process's membership in a service's line of versions: it inherits from its
 * predecessor (if one is serving at the socket path), then serves, then hands over to its successor.
 */
import { EventEmitter } from 'node:events'
import { renameSync, unlinkSync } from 'node:fs'
import { PagegiftError } from '../errors.ts'
import { makeEnv, type Env, type HandoffChannel, type HandoffServer } from './env.ts'
import { onConnection, type Serving } from './predecessor.ts'
import { LIMITS, msg } from './protocol.ts'
import { commit, inherit, type Inheritance } from './successor.ts'
import { warmUp } from './warmup.ts'
import type { HandedOffInfo, HandoffRecord, HandoffState, Inherited, JoinOptions, StatusReport, SuccessorInfo, WatchEvent } from './types.ts'

const DEFAULT_TIMEOUT_MS = 10_000
const DEFAULT_HELLO_TIMEOUT_MS = 2_000

/** Serves one connection to the handoff socket as if accepted there (the warm-up's dry run uses it). */
export const kAccept = Symbol('accept')

type Phase = 'joined' | 'serving' | 'handing-off' | 'handed-off' | 'closed'

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
  #opts: Required<Pick<JoinOptions, 'timeoutMs' | 'helloTimeoutMs' | 'exitOnHandoff'>>
  #inheritance: Inheritance | null
  #phase: Phase = 'joined'
  #handler: Serving['handler']
  #offer: Serving['offer']
  #server: HandoffServer | null = null
  #watchers = new Set<HandoffChannel>()
  #history: HandoffRecord[]
  #startedAt = new Date()
  #serving: Serving

  constructor (path: string, env: Env, opts: JoinOptions, inheritance: Inheritance | null) {
    super()
    this.path = path
    this.version = opts.version ?? ''
    this.#env = env
    this.#opts = { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, helloTimeoutMs: opts.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS, exitOnHandoff: opts.exitOnHandoff ?? true }
    this.#inheritance = inheritance
    this.generation = inheritance?.state.generation ?? 1
    this.inherited = inheritance?.inherited ?? null
    this.#history = inheritance?.history ?? []
    this.#serving = this.#makeServing()
  }

  /** Registers the function that quiesces this generation and returns the state to hand over. */
  onHandoff (fn: (successor: SuccessorInfo) => HandoffState | Promise<HandoffState>): this {
    if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be a function')
    this.#handler = fn
    return this
  }

  /**
   * Registers the regions to offer a successor as soon as it says HELLO, while this generation still
   * serves. The successor maps them then, so the pause does not grow with their size. Return the
   * same ArrayBuffers (under the same names) from onHandoff to hand them over; offered regions that
   * onHandoff leaves out are dropped by the successor. Writing to them after the offer is fine until
   * onHandoff returns: the successor maps the very same pages and reads them only after COMMIT.
   */
  offerRegions (fn: () => Record<string, ArrayBuffer>): this {
    if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be a function')
    this.#offer = fn
    return this
  }

  /**
   * Successor: sends READY (the commit point), waits for COMMIT, then starts its adopted servers and
   * connections. Every generation then listens on the socket path for its own successor.
   */
  async ready (): Promise<void> {
    if (this.#phase !== 'joined') throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_STATE', `ready() was already called (phase: ${this.#phase})`)
    this.#phase = 'serving'
    const inh = this.#inheritance
    if (inh !== null) await this.#commitInheritance(inh)
    try {
      this.#server = await this.#listen(inh !== null ? this.#opts.timeoutMs : 0)
    } catch (err) {
      if (inh === null) throw err
      // We committed and serve; only our own successors cannot reach us. Say so, but do not fail.
      if (this.listenerCount('error') > 0) this.emit('error', err)
      else process.emitWarning(`pagegift handoff: serving, but cannot listen on ${this.path} for successors: ${(err as Error).message}`)
      return
    }
    this.#server.on('connection', (ch) => { void onConnection(this.#serving, ch) })
    await warmUp()
  }

  /** Takes the socket path; a successor waits (up to `retryMs`) for its predecessor to let go of it after COMMIT. */
  async #listen (retryMs: number): Promise<HandoffServer> {
    const until = Date.now() + retryMs
    for (;;) {
      try {
        return await this.#env.listen(this.path)
      } catch (err) {
        // EADDRINUSE: it still listens. ENOENT, EAGAIN: our probe met it in the middle of retiring.
        if (!RETRY_LISTEN.has((err as { code?: string }).code ?? '') || Date.now() >= until) throw err
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
    }
  }

  async #commitInheritance (inh: Inheritance): Promise<void> {
    let how: 'commit' | 'takeover'
    try {
      how = await commit(this.#env, inh, this.#opts.timeoutMs)
    } catch (err) {
      this.#phase = 'closed'
      inh.gate.abort()
      for (const buf of Object.values(inh.inherited.regions)) this.#env.release(buf)
      inh.ch.close()
      throw err
    }
    inh.gate.open()
    const servingAt = this.#env.now()
    await this.#env.step('successor:serving')
    if (how === 'commit') await inh.ch.send(msg.serving(servingAt)).catch(() => {})
    inh.ch.close()
    const st = inh.state
    this.#history.push({
      generation: this.generation,
      fromPid: st.from.pid,
      toPid: this.#env.pid,
      version: this.version,
      at: new Date().toISOString(),
      downtimeMs: Number(servingAt - BigInt(st.stoppedAt)) / 1e6,
      pauseMs: Number(servingAt - BigInt(st.stoppedAt)) / 1e6,
      bytes: st.regions.reduce((n, r) => n + r.byteLength, 0),
      regions: st.regions.map((r) => ({ name: r.name, bytes: r.byteLength, path: inh.paths.get(r.name) ?? 'share' })),
      handles: st.handles.length,
    })
    this.#trimHistory()
  }

  async [kAccept] (ch: HandoffChannel): Promise<void> {
    await onConnection(this.#serving, ch)
  }

  /** Stops accepting successors and closes watchers; the process keeps serving its own clients. */
  async close (): Promise<void> {
    if (this.#phase !== 'handed-off') this.#phase = 'closed'
    for (const w of this.#watchers) w.close()
    this.#watchers.clear()
    const server = this.#server
    this.#server = null
    await server?.close()
  }

  /** What `pagegift status` shows. */
  status (): StatusReport {
    const inh = this.inherited
    const phase = this.#phase === 'handed-off' ? 'handed-off' : this.#serving.busyWith !== null ? 'handing-off' : 'serving'
    return {
      generation: this.generation,
      pid: this.#env.pid,
      version: this.version,
      startedAt: this.#startedAt.toISOString(),
      uptimeMs: Date.now() - this.#startedAt.getTime(),
      state: phase,
      regions: Object.entries(this.#offer?.() ?? inh?.regions ?? {}).map(([name, b]) => ({ name, bytes: b.byteLength })),
      handles: Object.entries(inh?.handles ?? {}).map(([name, h]) => ({ name, kind: h.kind })),
      history: [...this.#history],
    }
  }

  /**
   * Lets go of the socket path after COMMIT, while the successor may already be trying to listen
   * there. Closing alone would race: between our check that the file is ours and our unlink, the
   * successor may replace it. So the file is first renamed out of the way (atomic); the successor
   * then binds a fresh one, and ours is removed under its new name.
   */
  async #retire (): Promise<void> {
    const server = this.#server
    this.#server = null
    if (server === null) return
    const retired = `${this.path}.${this.#env.pid}.retired`
    let moved = true
    try { renameSync(this.path, retired) } catch { moved = false }
    await server.close()
    if (moved) { try { unlinkSync(retired) } catch {} }
  }

  #trimHistory (): void {
    if (this.#history.length > LIMITS.history) this.#history.splice(0, this.#history.length - LIMITS.history)
  }

  #broadcast (e: WatchEvent): void {
    for (const w of this.#watchers) w.send(msg.event(e)).catch(() => { this.#watchers.delete(w); w.close() })
  }

  #makeServing (): Serving {
    const self = this
    return {
      env: this.#env,
      generation: this.generation,
      version: this.version,
      timeoutMs: this.#opts.timeoutMs,
      helloTimeoutMs: this.#opts.helloTimeoutMs,
      get handler () { return self.#phase === 'serving' ? self.#handler : undefined },
      get offer () { return self.#offer },
      busyWith: null,
      history: this.#history,
      status: () => this.status(),
      broadcast: (e) => this.#broadcast(e),
      addWatcher: (ch) => {
        this.#watchers.add(ch)
        ch.on('close', () => this.#watchers.delete(ch))
      },
      unlisten: async () => { await this.#retire() },
      committed: (record) => { void this.#handedOff(record) },
      resumed: (err) => {
        this.#broadcast({ event: 'resumed', reason: err.message, code: (err as { code?: string }).code ?? 'ERR_PAGEGIFT_HANDOFF' })
        this.emit('resumed', err)
      },
    }
  }

  async #handedOff (record: HandoffRecord): Promise<void> {
    this.#phase = 'handed-off'
    this.#history.push(record)
    this.#trimHistory()
    await Promise.all([...this.#watchers].map(async (w) => await w.send(msg.event({ event: 'committed', record })).catch(() => {})))
    for (const w of this.#watchers) w.close()
    this.#watchers.clear()
    this.emit('handedOff', record)
    if (this.#opts.exitOnHandoff) setImmediate(() => process.exit(0))
  }
}

function checkOptions (path: unknown, opts: unknown): JoinOptions {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('The "socketPath" argument must be a non-empty string')
  if (Buffer.byteLength(path) > 107) throw new RangeError(`The "socketPath" argument is longer than a Unix socket path may be (107 bytes): ${path}`)
  if (typeof opts !== 'object' || opts === null) throw new TypeError('The "opts" argument must be an object')
  const o = opts as JoinOptions
  if (o.version !== undefined && (typeof o.version !== 'string' || o.version.length > LIMITS.name)) throw new TypeError(`The "opts.version" argument must be a string of at most ${LIMITS.name} chars`)
  for (const k of ['timeoutMs', 'helloTimeoutMs'] as const) {
    const v = o[k]
    if (v !== undefined && (typeof v !== 'number' || !(v > 0) || v > 2 ** 31 - 1)) throw new RangeError(`The "opts.${k}" argument must be a positive number of ms. Received ${String(v)}`)
  }
  return o
}

const RETRY_LISTEN = new Set(['EADDRINUSE', 'ENOENT', 'EAGAIN'])

/** Codes of a connect() that finds no live predecessor: we are the first generation. */
const NOBODY = new Set(['ENOENT', 'ECONNREFUSED'])

/**
 * Joins the service at `socketPath`: inherits from the generation serving there (receiving its
 * regions, handles and metadata), or becomes generation 1 if nobody is serving.
 */
export async function join (socketPath: string, opts: JoinOptions = {}): Promise<Generation> {
  const o = checkOptions(socketPath, opts)
  const env = makeEnv(o.env)
  await warmUp()
  let ch: HandoffChannel
  try {
    ch = await env.connect(socketPath)
  } catch (err) {
    if (NOBODY.has((err as { code?: string }).code ?? '')) return new Generation(socketPath, env, o, null)
    throw err
  }
  const inheritance = await inherit(env, ch, o.version ?? '', o.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  return new Generation(socketPath, env, o, inheritance)
}
