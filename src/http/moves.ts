/**
 * Moves after the commit. Connections that were busy at the quiesce finish their request in the old
 * generation and then move, one at a time, over a private channel to the successor: the fd (sent
 * with SCM_RIGHTS) with the bytes the old side took out of its stream. The successor acknowledges
 * each one before it reads a byte, and the old side closes its copy only after that
 * acknowledgement: a connection is always served by exactly one process.
 *
 * The successor listens at `movesPath(socket, its pid)` before it commits, and accepts only its
 * predecessor's pid (SO_PEERCRED).
 */
import net from 'node:net'
import { closeFds, connect, listen, PagegiftError, type Channel, type GiftServer } from '../index.ts'
import { Validator } from '../validate.ts'
import { within } from '../within.ts'

const v = new Validator((why) => new PagegiftError('ERR_PAGEGIFT_HTTP_PROTOCOL', `pagegift http moves: ${why}`))
const MAX_PENDING = 1 << 20
/** How long the old side waits for one acknowledgement before it gives the connection up. */
const ACK_TIMEOUT_MS = 5_000

/** Where generation `pid` of the service at `socket` receives the connections its predecessor drains. */
export function movesPath (socket: string, pid: number): string {
  return `${socket}.moves.${pid}`
}

type Adopt = (socket: net.Socket, pending: Buffer) => void

/**
 * Successor: receives moved connections from `fromPid` until it says done, its channel closes, or
 * `waitMs` passes without a message. Each socket is acknowledged, then given to `adopt`.
 */
export async function receiveMoves (path: string, fromPid: number, adopt: Adopt, waitMs: number): Promise<{ close: () => Promise<void>, done: Promise<void> }> {
  const server: GiftServer = await listen(path)
  let finish!: () => void
  const done = new Promise<void>((resolve) => { finish = resolve })
  // The predecessor connects right after the commit; if it never does, it is gone.
  const idle = setTimeout(() => { void server.close().then(finish) }, Math.min(waitMs, 10_000))
  idle.unref()
  server.on('connection', (ch: Channel) => {
    if (ch.peer.pid !== fromPid) { ch.close(); return }
    clearTimeout(idle)
    void server.close()
    void serveMoves(ch, adopt, waitMs).finally(() => { ch.close(); finish() })
  })
  return { close: async () => { clearTimeout(idle); await server.close(); finish() }, done }
}

async function serveMoves (ch: Channel, adopt: Adopt, waitMs: number): Promise<void> {
  for (;;) {
    const { msg, fds } = await ch.recv({ timeoutMs: waitMs }).catch(() => ({ msg: { t: 'done' }, fds: [] as number[] }))
    let m: { t: string, id: number, pending: Buffer }
    try {
      m = parseMove(msg, fds)
    } catch {
      closeAll(fds)
      return
    }
    if (m.t === 'done') return
    const socket = new net.Socket({ fd: fds[0], readable: true, writable: true, manualStart: true } as net.SocketConstructorOpts)
    try {
      await ch.send({ t: 'adopted', id: m.id })
    } catch {
      socket.destroy() // Not acknowledged: the old side keeps serving it.
      return
    }
    adopt(socket, m.pending)
  }
}

function parseMove (msg: unknown, fds: number[]): { t: string, id: number, pending: Buffer } {
  const o = v.obj(msg, 'message')
  const t = v.oneOf(o.t, 'message.t', ['conn', 'done'] as const)
  if (t === 'done') {
    if (fds.length !== 0) v.fail('done carries fds')
    return { t, id: 0, pending: Buffer.alloc(0) }
  }
  if (fds.length !== 1) v.fail(`conn carries ${fds.length} fds, not 1`)
  const pending = Buffer.from(v.str(o.pending, 'message.pending', Math.ceil(MAX_PENDING / 3) * 4), 'base64')
  return { t, id: v.uint(o.id, 'message.id'), pending }
}

function closeAll (fds: number[]): void {
  if (fds.length > 0) closeFds(fds)
}

/** Predecessor: the sending end. `send` resolves true once the successor has the connection. */
export class MoveSender {
  readonly #ch: Channel
  #next = 1
  readonly #waiting = new Map<number, (ok: boolean) => void>()

  private constructor (ch: Channel) {
    this.#ch = ch
    void this.#readAcks()
  }

  /** Connects to the successor `pid`, retrying while it may still be starting to listen. */
  static async open (socket: string, pid: number, deadlineMs: number): Promise<MoveSender> {
    const until = Date.now() + deadlineMs
    for (;;) {
      try {
        const ch = await connect(movesPath(socket, pid))
        if (ch.peer.pid !== pid) { ch.close(); throw new PagegiftError('ERR_PAGEGIFT_HTTP_PEER', `pid ${ch.peer.pid} listens where successor ${pid} should`) }
        return new MoveSender(ch)
      } catch (err) {
        if (Date.now() >= until || (err as { code?: string }).code === 'ERR_PAGEGIFT_HTTP_PEER') throw err
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
  }

  async #readAcks (): Promise<void> {
    for (;;) {
      let m: { msg: unknown, fds: number[] }
      try {
        m = await this.#ch.recv()
      } catch {
        break
      }
      closeAll(m.fds)
      const o = m.msg as { t?: unknown, id?: unknown } | null
      const id = typeof o?.id === 'number' && o.t === 'adopted' ? o.id : -1
      this.#waiting.get(id)?.(true)
      this.#waiting.delete(id)
    }
    for (const settle of this.#waiting.values()) settle(false)
    this.#waiting.clear()
  }

  /**
   * Sends one connection (its fd stays ours until we close it). Resolves 'adopted', 'refused' (the
   * channel is gone: the successor never read it, so it is still ours) or 'unknown' (no answer in
   * time: it may be served there, so it must not be served here).
   */
  async send (fd: number, pending: Buffer): Promise<'adopted' | 'refused' | 'unknown'> {
    if (this.#ch.closed) return 'refused'
    const id = this.#next++
    const acked = new Promise<boolean>((resolve) => this.#waiting.set(id, resolve))
    try {
      await this.#ch.send({ t: 'conn', id, pending: pending.toString('base64') }, [fd])
    } catch {
      this.#waiting.delete(id)
      return 'refused'
    }
    return await within(acked.then((ok) => ok ? 'adopted' as const : 'refused' as const), ACK_TIMEOUT_MS, 'unknown' as const)
  }

  async close (): Promise<void> {
    await this.#ch.send({ t: 'done' }).catch(() => {})
    this.#ch.close()
  }
}
