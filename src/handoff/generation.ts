/**
 * A Generation is one process's membership in a service's line of versions: it inherits from its
 * predecessor (if one is serving at the socket path), then serves, then hands over to its successor.
 */
import { EventEmitter } from 'node:events'
import { renameSync, unlinkSync } from 'node:fs'
import { PagegiftError } from '../errors.ts'
import { makeEnv, type Env, type HandoffChannel, type HandoffServer } from './env.ts'
import { ensureKey, readKey } from './key.ts'
import { onConnection, type Serving } from './predecessor.ts'
import { LIMITS, msg, parseDrained, parseWatcherRequest } from './protocol.ts'
import { commit, gone, inherit, type Inheritance } from './successor.ts'
import type { HandedOffInfo, HandoffRecord, HandoffState, Inherited, JoinOptions, StatusReport, SuccessorInfo, WatchEvent } from './types.ts'

const DEFAULT_TIMEOUT_MS = 10_000
const DEFAULT_HELLO_TIMEOUT_MS = 2_000
const DEFAULT_PAUSE_BUDGET_MS = 500

type Phase = 'joined' | 'serving' | 'handing-off' | 'draining' | 'handed-off' | 'closed'

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
  #handler: Serving['handler']
  #offer: Serving['offer']
  #server: HandoffServer | null = null
  /** Watchers and the protocol version each speaks. */
  #watchers = new Map<HandoffChannel, number>()
  /** Watchers (pagegift upgrade) that gave up on their successor: no COMMIT may go out while one is open. */
  #fences = new Set<HandoffChannel>()
  /** COMMIT went out and neither SERVING nor the successor's end has come back yet. */
  #committing = false
  #key = ''
  #history: HandoffRecord[]
  #startedAt = new Date()
  #serving: Serving

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
      this.#key = ensureKey(this.path)
      this.#server = await this.#listen(inh !== null ? this.#opts.timeoutMs : 0)
    } catch (err) {
      if (inh === null) throw err
      // We committed and serve; only our own successors cannot reach us. Say so, but do not fail.
      if (this.listenerCount('error') > 0) this.emit('error', err)
      else process.emitWarning(`pagegift handoff: serving, but cannot listen on ${this.path} for successors: ${(err as Error).message}`)
      return
    }
    this.#server.on('connection', (ch) => { void onConnection(this.#serving, ch) })
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

  /** Gives everything received back: nothing was served, so the predecessor finds it all as it left it. */
  #abandon (inh: Inheritance): void {
    this.#phase = 'closed'
    inh.gate.abort()
    for (const buf of Object.values(inh.inherited.regions)) this.#env.release(buf)
    inh.ch.close()
  }

  /**
   * READY, COMMIT, then SERVING before the gate opens: until the predecessor has SERVING it keeps
   * every handle, and resumes if we die here; so we open the gate only once SERVING went out (or
   * the predecessor is gone, and nobody else can serve).
   */
  async #commitInheritance (inh: Inheritance): Promise<void> {
    let how: 'commit' | 'takeover'
    try {
      how = await commit(this.#env, inh, this.#opts.timeoutMs)
    } catch (err) {
      this.#abandon(inh)
      throw err
    }
    const servingAt = this.#env.now()
    if (how === 'commit') {
      await this.#env.step('successor:committed')
      const sent = await inh.ch.send(msg.serving(inh.v, servingAt)).then(() => true, () => false)
      if (!sent && !await gone(this.#env, inh.state.from.pid, 2000)) {
        this.#abandon(inh)
        throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_ABORTED', `The predecessor (pid ${inh.state.from.pid}) did not get SERVING after COMMIT, so it serves on: nothing was taken over`)
      }
    }
    inh.gate.open()
    await this.#env.step('successor:serving')
    if (how === 'commit') void this.#awaitDrained(inh)
    else this.#stopDraining(inh)
    const st = inh.state
    this.#history.push({
      generation: this.generation,
      fromPid: st.from.pid,
      toPid: this.#env.pid,
      version: this.version,
      at: new Date().toISOString(),
      downtimeMs: Number(servingAt - BigInt(st.stoppedAt)) / 1e6,
      // Stopped serving to COMMIT, here as received (the predecessor's record has it as sent).
      pauseMs: Number(servingAt - BigInt(st.stoppedAt)) / 1e6,
      bytes: st.regions.reduce((n, r) => n + r.byteLength, 0),
      regions: st.regions.map((r) => ({ name: r.name, bytes: r.byteLength, path: inh.paths.get(r.name) ?? 'share' })),
      handles: st.handles.length,
    })
    this.#trimHistory()
  }

  /** Connections whose output the predecessor still flushes: our writes to each wait for its DRAINED. */
  async #awaitDrained (inh: Inheritance): Promise<void> {
    try {
      while (inh.gate.draining.length > 0) {
        const r = await inh.ch.recv({ timeoutMs: this.#opts.timeoutMs + 2000 })
        for (const fd of r.fds) this.#env.closeFd(fd)
        const d = parseDrained(r.msg, inh.v)
        inh.gate.drained(d.handle, d.ok)
      }
    } catch {
    } finally {
      this.#stopDraining(inh)
    }
  }

  /** Connections that never drained lost part of their output: they are closed rather than corrupted. */
  #stopDraining (inh: Inheritance): void {
    for (const name of inh.gate.draining) inh.gate.drained(name, false)
    inh.ch.close()
  }

  /** Stops accepting successors and closes watchers; the process keeps serving its own clients. */
  async close (): Promise<void> {
    if (this.#phase !== 'handed-off') this.#phase = 'closed'
    for (const w of this.#watchers.keys()) w.close()
    this.#watchers.clear()
    const server = this.#server
    this.#server = null
    await server?.close()
  }

  /** What `pagegift status` shows. */
  status (): StatusReport {
    const inh = this.inherited
    const phase = this.#phase === 'handed-off' || this.#phase === 'draining' ? this.#phase : this.#serving.busyWith !== null ? 'handing-off' : 'serving'
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
    if (e.event === 'committing') this.#committing = true
    for (const [w, v] of this.#watchers) w.send(msg.event(v, e)).catch(() => { this.#watchers.delete(w); w.close() })
  }

  /**
   * A watcher stays subscribed until it closes. An authorized one (it presented the key) may ask for
   * a fence: no COMMIT goes out while it is open, unless one already did (`committing`), in which
   * case the successor must be left alone. pagegift upgrade fences before it kills a late successor.
   */
  #addWatcher (ch: HandoffChannel, v: number, authorized: boolean): void {
    this.#watchers.set(ch, v)
    ch.on('close', () => { this.#watchers.delete(ch); this.#fences.delete(ch) })
    void (async () => {
      for (;;) {
        let r: { msg: unknown, fds: number[] }
        try { r = await ch.recv() } catch { return }
        for (const fd of r.fds) this.#env.closeFd(fd)
        try { parseWatcherRequest(r.msg, v) } catch { ch.close(); return }
        const granted = authorized && !this.#committing
        if (granted) this.#fences.add(ch)
        const reason = !authorized ? 'a fence needs the service key' : this.#committing ? 'COMMIT was already sent' : undefined
        await ch.send(msg.event(v, { event: 'fenced', granted, committing: this.#committing, ...(reason !== undefined ? { reason } : {}) })).catch(() => {})
      }
    })()
  }

  #makeServing (): Serving {
    const self = this
    return {
      env: this.#env,
      generation: this.generation,
      version: this.version,
      timeoutMs: this.#opts.timeoutMs,
      helloTimeoutMs: this.#opts.helloTimeoutMs,
      pauseBudgetMs: this.#opts.pauseBudgetMs,
      get key () { return self.#key },
      layouts: Object.fromEntries(Object.entries(this.#opts.layouts).map(([name, l]) => [name, l.version])),
      get handler () { return self.#phase === 'serving' ? self.#handler : undefined },
      get offer () { return self.#offer },
      busyWith: null,
      history: this.#history,
      fenced: () => this.#fences.size > 0,
      status: () => this.status(),
      broadcast: (e) => this.#broadcast(e),
      addWatcher: (ch, v, authorized) => this.#addWatcher(ch, v, authorized),
      unlisten: async () => { await this.#retire() },
      committed: (record) => { void this.#handedOff(record) },
      retired: () => {
        this.#phase = 'handed-off'
        if (this.#opts.exitOnHandoff) setImmediate(() => process.exit(0))
      },
      resumed: (err, afterCommit) => {
        this.#committing = false
        this.#broadcast({ event: 'resumed', reason: err.message, code: (err as { code?: string }).code ?? 'ERR_PAGEGIFT_HANDOFF', ...(afterCommit ? { afterCommit } : {}) })
        this.emit('resumed', err)
      },
    }
  }

  /** SERVING arrived: the successor serves. We only finish flushing the draining connections. */
  async #handedOff (record: HandoffRecord): Promise<void> {
    this.#phase = 'draining'
    this.#committing = false
    this.#history.push(record)
    this.#trimHistory()
    await Promise.all([...this.#watchers].map(async ([w, v]) => await w.send(msg.event(v, { event: 'committed', record })).catch(() => {})))
    for (const w of this.#watchers.keys()) w.close()
    this.#watchers.clear()
    this.emit('handedOff', record)
  }
}

function checkOptions (path: unknown, opts: unknown): JoinOptions {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('The "socketPath" argument must be a non-empty string')
  if (Buffer.byteLength(path) > 107) throw new RangeError(`The "socketPath" argument is longer than a Unix socket path may be (107 bytes): ${path}`)
  if (typeof opts !== 'object' || opts === null) throw new TypeError('The "opts" argument must be an object')
  const o = opts as JoinOptions
  if (o.version !== undefined && (typeof o.version !== 'string' || o.version.length > LIMITS.name)) throw new TypeError(`The "opts.version" argument must be a string of at most ${LIMITS.name} chars`)
  if (o.layouts !== undefined) checkLayoutOptions(o.layouts)
  for (const k of ['timeoutMs', 'helloTimeoutMs', 'pauseBudgetMs'] as const) {
    const v = o[k]
    if (v !== undefined && (typeof v !== 'number' || !(v > 0) || v > 2 ** 31 - 1)) throw new RangeError(`The "opts.${k}" argument must be a positive number of ms. Received ${String(v)}`)
  }
  return o
}

function checkLayoutOptions (layouts: unknown): void {
  if (typeof layouts !== 'object' || layouts === null) throw new TypeError('The "opts.layouts" argument must be an object')
  const version = (x: unknown): boolean => Number.isInteger(x) && (x as number) >= 0 && (x as number) < 2 ** 31
  for (const [name, spec] of Object.entries(layouts)) {
    const l = spec as { version?: unknown, accepts?: unknown }
    if (typeof l !== 'object' || l === null || !version(l.version)) throw new TypeError(`The "opts.layouts.${name}.version" argument must be a non-negative integer`)
    if (l.accepts !== undefined && (!Array.isArray(l.accepts) || !l.accepts.every(version))) throw new TypeError(`The "opts.layouts.${name}.accepts" argument must be an array of non-negative integers`)
  }
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
  // Read before connecting: a key file that is not ours alone fails here, whoever serves.
  const key = readKey(socketPath)
  let ch: HandoffChannel
  try {
    ch = await env.connect(socketPath)
  } catch (err) {
    if (NOBODY.has((err as { code?: string }).code ?? '')) return new Generation(socketPath, env, o, null)
    throw err
  }
  const inheritance = await inherit(env, ch, { version: o.version ?? '', key, layouts: o.layouts ?? {} }, o.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  return new Generation(socketPath, env, o, inheritance)
}
