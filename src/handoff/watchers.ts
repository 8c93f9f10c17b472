/**
 * Watchers of a serving generation (pagegift upgrade): each gets the handoff events in the protocol
 * version it speaks. An authorized watcher (it presented the service key) may ask for a fence: no
 * COMMIT goes out while it stays open, unless one already did, in which case the successor must be
 * left alone. pagegift upgrade fences before it kills a successor that missed its deadline.
 */
import type { Env, HandoffChannel } from './env.ts'
import { msg, parseWatcherRequest } from './protocol.ts'
import { fitRecord } from './report.ts'
import type { HandoffRecord, WatchEvent } from './types.ts'

export class Watchers {
  readonly #env: Env
  /** Each watcher and the protocol version it speaks. */
  readonly #all = new Map<HandoffChannel, number>()
  readonly #fences = new Set<HandoffChannel>()
  /** COMMIT went out, and neither SERVING nor a rollback has come back yet. */
  #committing = false

  constructor (env: Env) { this.#env = env }

  get fenced (): boolean { return this.#fences.size > 0 }

  add (ch: HandoffChannel, v: number, authorized: boolean): void {
    this.#all.set(ch, v)
    ch.on('close', () => { this.#all.delete(ch); this.#fences.delete(ch) })
    void this.#serve(ch, v, authorized)
  }

  /** A watcher's requests, until it closes (its close ends the wait). */
  async #serve (ch: HandoffChannel, v: number, authorized: boolean): Promise<void> {
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
  }

  broadcast (e: WatchEvent): void {
    if (e.event === 'committing') this.#committing = true
    if (e.event === 'resumed') this.#committing = false
    for (const [w, v] of this.#all) w.send(msg.event(v, e)).catch(() => { this.#all.delete(w); w.close() })
  }

  /** The last event a watcher gets: the commit, after which it is closed. */
  async committed (record: HandoffRecord): Promise<void> {
    this.#committing = false
    // 256 regions with long names would not fit one message, and the watcher would never hear of the commit.
    const r = this.#all.size > 0 ? fitRecord(record) : record
    await Promise.all([...this.#all].map(async ([w, v]) => await w.send(msg.event(v, { event: 'committed', record: r })).catch(() => {})))
    this.close()
  }

  close (): void {
    for (const w of this.#all.keys()) w.close()
    this.#all.clear()
    this.#fences.clear()
  }
}
