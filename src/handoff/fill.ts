/**
 * A successor's page-table fill (populate() in pages.ts) of the regions it maps: one job of at most
 * 64 MiB at a time, paused for the pause itself, so that the threadpool stays free for the
 * handoff's own jobs (the gift ladder's copies, unmaps) and the app's.
 */
import { within } from '../within.ts'
import type { Env } from './env.ts'

export class PageFill {
  readonly #env: Env
  readonly #queue: ArrayBuffer[] = []
  /** Regions filled to their end: added again (an offered region comes back with STATE), they are not walked again. */
  readonly #done = new WeakSet<ArrayBuffer>()
  #paused = false
  #running: Promise<void> | null = null

  constructor (env: Env) {
    this.#env = env
  }

  /** Queues regions (not those filled already, nor those queued), and fills them unless paused. */
  add (bufs: ArrayBuffer[]): void {
    for (const b of bufs) if (!this.#done.has(b) && !this.#queue.includes(b)) this.#queue.push(b)
    this.#start()
  }

  /** Stops after the job in flight (a few ms); resume() goes on with what is left. */
  pause (): void {
    this.#paused = true
  }

  resume (): void {
    this.#paused = false
    this.#start()
  }

  /** Resolves once nothing is left to fill (or the fill is paused), or after `ms` at the latest. */
  async settled (ms: number): Promise<void> {
    await within(this.#running ?? Promise.resolve(), ms, undefined)
  }

  #start (): void {
    if (this.#running !== null || this.#paused || this.#queue.length === 0) return
    this.#running = this.#run().finally(() => {
      this.#running = null
      this.#start()
    })
  }

  async #run (): Promise<void> {
    while (this.#queue.length > 0 && !this.#paused) {
      await this.#env.populate(this.#queue[0], () => this.#paused)
      // A region cut short by a pause is filled again from its start: its filled part goes fast.
      if (!this.#paused) this.#done.add(this.#queue.shift() as ArrayBuffer)
    }
  }
}
