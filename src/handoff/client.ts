/** Observers of a serving generation: `status` (one snapshot) and `watch` (a stream of handoff events). */
import { makeEnv, type Env, type HandoffChannel } from './env.ts'
import { msg, parseEvent, parseStatusReply, replyVersion } from './protocol.ts'
import type { StatusReport, WatchEvent } from './types.ts'

const RETRY_CODES = new Set(['ENOENT', 'ECONNREFUSED'])

/** Connects, retrying briefly: between READY and the successor's listen() nobody holds the path. */
async function connectRetrying (env: Env, path: string, retryMs: number): Promise<HandoffChannel> {
  const until = Date.now() + retryMs
  for (;;) {
    try {
      return await env.connect(path)
    } catch (err) {
      if (!RETRY_CODES.has((err as { code?: string }).code ?? '') || Date.now() >= until) throw err
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
}

/** Asks the generation serving at `path` for its status. Never triggers a handoff. */
export async function status (path: string, opts: { timeoutMs?: number, retryMs?: number, env?: Partial<Env> } = {}): Promise<StatusReport> {
  const env = makeEnv(opts.env)
  const ch = await connectRetrying(env, path, opts.retryMs ?? 0)
  try {
    await ch.send(msg.request('status'))
    const r = await ch.recv({ timeoutMs: opts.timeoutMs ?? 5000 })
    for (const fd of r.fds) env.closeFd(fd)
    return parseStatusReply(r.msg)
  } finally {
    ch.close()
  }
}

export interface Watch {
  /** The status at the moment the watch began. */
  status: StatusReport
  /** The protocol version the serving generation speaks with us (1: the previous release, which cannot fence). */
  version: number
  /**
   * Asks the generation to send no COMMIT while this watch stays open (needs the key). Its answer
   * arrives as a 'fenced' event: `committing` means COMMIT already went out.
   */
  fence (): Promise<void>
  /** Resolves with the next event, or null when the generation closed the watch. */
  next (timeoutMs?: number): Promise<WatchEvent | null>
  close (): void
}

/** Subscribes to the handoff events of the generation serving at `path`; `key` (the service key) allows a fence. */
export async function watch (path: string, opts: { timeoutMs?: number, key?: string | null, env?: Partial<Env> } = {}): Promise<Watch> {
  const env = makeEnv(opts.env)
  const ch = await env.connect(path)
  try {
    await ch.send(msg.request('watch', opts.key ?? null))
    const first = await ch.recv({ timeoutMs: opts.timeoutMs ?? 5000 })
    for (const fd of first.fds) env.closeFd(fd)
    const st = parseStatusReply(first.msg)
    const v = replyVersion(first.msg)
    return {
      status: st,
      version: v,
      fence: async () => { await ch.send(msg.fence(v)) },
      next: async (timeoutMs) => {
        try {
          const r = await ch.recv(timeoutMs !== undefined ? { timeoutMs } : {})
          for (const fd of r.fds) env.closeFd(fd)
          return parseEvent(r.msg)
        } catch (err) {
          const code = (err as { code?: string }).code
          if (code === 'ERR_PAGEGIFT_PEER_CLOSED' || code === 'ERR_PAGEGIFT_CLOSED') return null
          throw err
        }
      },
      close: () => ch.close(),
    }
  } catch (err) {
    ch.close()
    throw err
  }
}
