/**
 * A mixed read/write load: each worker sends pipelined batches of GETs of the loaded keys (each
 * reply checked against the value the key must have) and SETs of its own keys, until stopped.
 */
import { KvClient, RespError, type Arg } from '../../src/kv/client.ts'
import { fillValue, keyName } from './data.ts'

export interface MixedOptions { port: number, workers: number, keys: number, valueSize: number, readRatio?: number, batch?: number }

export interface MixedStats { requests: number, errors: number, wrong: number, maxBatchMs: number, firstError: string }

export class MixedLoad {
  readonly stats: MixedStats = { requests: 0, errors: 0, wrong: 0, maxBatchMs: 0, firstError: '' }
  private running = false
  private loops: Promise<void>[] = []

  constructor (private readonly o: MixedOptions) {}

  async start (): Promise<void> {
    this.running = true
    const clients = await Promise.all(Array.from({ length: this.o.workers }, async () => await KvClient.connect(this.o.port)))
    this.loops = clients.map(async (c, w) => await this.work(c, w))
  }

  async stop (): Promise<MixedStats> {
    this.running = false
    await Promise.all(this.loops)
    return this.stats
  }

  private async work (c: KvClient, w: number): Promise<void> {
    const { keys, valueSize } = this.o
    const readRatio = this.o.readRatio ?? 0.8
    const batch = this.o.batch ?? 32
    const expect = Buffer.allocUnsafe(valueSize)
    const value = Buffer.alloc(valueSize, 120)
    let seq = 0
    while (this.running) {
      const cmds: Arg[][] = []
      const reads: number[] = []
      for (let i = 0; i < batch; i++) {
        if (Math.random() < readRatio) {
          const k = Math.floor(Math.random() * keys)
          reads.push(k)
          cmds.push(['GET', keyName('key:', k)])
        } else {
          reads.push(-1)
          cmds.push(['SET', `mix:${w}:${seq++ % 10000}`, value])
        }
      }
      const t0 = performance.now()
      let replies
      try {
        replies = await c.pipeline(cmds)
      } catch (err) {
        this.stats.errors += cmds.length
        if (this.stats.firstError === '') this.stats.firstError = `client ${w}: ${(err as Error).message}`
        return
      }
      this.stats.maxBatchMs = Math.max(this.stats.maxBatchMs, performance.now() - t0)
      this.stats.requests += replies.length
      replies.forEach((r, i) => {
        if (r instanceof RespError) {
          this.stats.errors++
          if (this.stats.firstError === '') this.stats.firstError = r.message
        } else if (reads[i] >= 0 && !(Buffer.isBuffer(r) && r.equals(fillValue(expect, reads[i])))) {
          this.stats.wrong++
        }
      })
    }
    await c.close()
  }
}
