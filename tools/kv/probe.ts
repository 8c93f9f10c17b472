/**
 * Measures unavailability as a client sees it: one request at a time, back to back, reconnecting
 * whenever the connection drops, and the time of every good answer. The largest gap between two
 * good answers is the downtime (plus one round trip).
 */
import { KvClient, type Arg, type RespValue } from '../../src/kv/client.ts'

/** One way to ask a server something; false or a throw means "not serving (yet)". */
export interface Asker {
  connect (): Promise<void>
  ask (): Promise<boolean>
  close (): void
}

export interface ProbeResult { answers: number, maxGapMs: number, failures: number, reconnects: number }

const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6

export class Probe {
  private running = false
  private loop: Promise<void> = Promise.resolve()
  private last = 0
  /** CLOCK_MONOTONIC (ms) of every good answer, comparable with other processes' clocks. */
  readonly times: number[] = []
  readonly result: ProbeResult = { answers: 0, maxGapMs: 0, failures: 0, reconnects: 0 }

  constructor (private readonly asker: Asker) {}

  start (): void {
    this.running = true
    this.last = monotonicMs()
    this.loop = this.run()
  }

  /** Stops after the next good answer (so a gap in progress is counted) or after `timeoutMs`. */
  async stop (timeoutMs = 120_000): Promise<ProbeResult> {
    const until = this.result.answers + 1
    const deadline = Date.now() + timeoutMs
    while (this.result.answers < until && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1))
    this.running = false
    await this.loop
    return this.result
  }

  private async run (): Promise<void> {
    let connected = false
    while (this.running) {
      try {
        if (!connected) {
          await this.asker.connect()
          connected = true
        }
        const ok = await this.asker.ask()
        if (ok) this.answered()
        else this.result.failures++
      } catch {
        this.result.failures++
        if (connected) this.result.reconnects++
        connected = false
        this.asker.close()
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
    }
    this.asker.close()
  }

  /** The gap between the last answer before and the first answer at or after `atMs` (CLOCK_MONOTONIC). */
  gapAround (atMs: number): number {
    const j = this.times.findIndex((t) => t >= atMs)
    return j <= 0 ? Number.NaN : this.times[j] - this.times[j - 1]
  }

  private answered (): void {
    const now = monotonicMs()
    this.times.push(now)
    this.result.maxGapMs = Math.max(this.result.maxGapMs, now - this.last)
    this.last = now
    this.result.answers++
  }
}

/** Asks a RESP server `cmd`; `good` decides whether the reply means serving. */
export function respAsker (port: number, cmd: Arg[], good: (r: RespValue) => boolean = () => true): Asker {
  let client: KvClient | null = null
  return {
    connect: async () => { client = await KvClient.connect(port) },
    ask: async () => {
      if (client === null) throw new Error('not connected')
      const [r] = await client.pipeline([cmd])
      if (r instanceof Error && /closed|ECONN|EPIPE/.test(r.message)) throw r
      return good(r)
    },
    close: () => { client?.socket.destroy(); client = null }
  }
}
