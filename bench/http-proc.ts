/** The bench's service processes (examples/http-cache-app.ts), shared by bench/http.ts and bench/http-throughput.ts. */
import { spawn, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A service process; its stdout is JSON lines. */
export class Proc {
  readonly events: Record<string, unknown>[] = []
  readonly child: ChildProcess
  constructor (cmd: string, args: string[], env: Record<string, string>) {
    this.child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'], detached: true })
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (l) => { try { this.events.push(JSON.parse(l) as Record<string, unknown>) } catch {} })
  }

  async wait (event: string, count = 1, ms = 120_000): Promise<void> {
    const until = Date.now() + ms
    while (this.events.filter((e) => e.event === event).length < count) {
      if (Date.now() > until) throw new Error(`bench http: no '${event}' within ${ms} ms`)
      await sleep(20)
    }
  }
}
