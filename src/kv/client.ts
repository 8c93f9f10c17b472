/**
 * A small pipelined RESP2/RESP3 client, for the demo, the benchmarks and the tests. Every `pipeline`
 * call is one socket write; replies come back in order and resolve each batch's promise. Replies
 * that answer no batch (pub/sub messages, RESP3 pushes, the answers to `send`) wait in an inbox
 * for `next`.
 */
import net from 'node:net'

export class RespError extends Error {}
/** A RESP3 map, in the order sent. */
export class RespMap {
  constructor (readonly entries: [RespValue, RespValue][]) {}
}
/** A RESP3 push (an out-of-band message). */
export class RespPush {
  constructor (readonly items: RespValue[]) {}
}
export type RespValue = string | number | boolean | Buffer | null | RespError | RespMap | RespPush | RespValue[]
export type Arg = string | Buffer | number

interface Batch { left: number, replies: RespValue[], resolve: (r: RespValue[]) => void }

/** Encodes commands as RESP arrays of bulk strings, into one buffer. */
export function encode (cmds: Arg[][]): Buffer {
  let size = 0
  const args: (Buffer | string)[][] = cmds.map((cmd) => cmd.map((a) => Buffer.isBuffer(a) ? a : String(a)))
  for (const cmd of args) {
    size += 16
    for (const a of cmd) size += 16 + (typeof a === 'string' ? Buffer.byteLength(a) : a.length)
  }
  const out = Buffer.allocUnsafe(size)
  let p = 0
  for (const cmd of args) {
    p += out.write(`*${cmd.length}\r\n`, p, 'latin1')
    for (const a of cmd) {
      if (typeof a === 'string') {
        p += out.write(`$${Buffer.byteLength(a)}\r\n`, p, 'latin1')
        p += out.write(a, p)
      } else {
        p += out.write(`$${a.length}\r\n`, p, 'latin1')
        p += a.copy(out, p)
      }
      out[p++] = 13
      out[p++] = 10
    }
  }
  return out.subarray(0, p)
}

const NEED_MORE = Symbol('need more')

/** Parses one reply at `pos`; returns [value, next offset] or NEED_MORE. */
export function parseReply (b: Buffer, pos: number): [RespValue, number] | typeof NEED_MORE {
  const nl = b.indexOf('\r\n', pos)
  if (nl < 0) return NEED_MORE
  const type = b[pos]
  const line = b.toString('latin1', pos + 1, nl)
  if (type === 43) return [line, nl + 2]
  if (type === 45) return [new RespError(line), nl + 2]
  if (type === 58) return [Number(line), nl + 2]
  if (type === 36 || type === 61) return parseBulk(b, line, nl, type === 61)
  if (type === 95) return [null, nl + 2]
  if (type === 44) return [line === 'inf' ? Infinity : line === '-inf' ? -Infinity : Number(line), nl + 2]
  if (type === 35) return [line === 't', nl + 2]
  if (type === 40) return [line, nl + 2]
  if (type === 42 || type === 126 || type === 62 || type === 37 || type === 124) {
    const n = Number(line)
    if (n < 0) return [null, nl + 2]
    const r = parseItems(b, nl + 2, type === 37 || type === 124 ? 2 * n : n)
    if (r === NEED_MORE) return NEED_MORE
    const [items, p] = r
    if (type === 124) return parseReply(b, p) // attributes are skipped
    if (type === 62) return [new RespPush(items), p]
    if (type === 37) return [new RespMap(Array.from({ length: n }, (_, i) => [items[2 * i], items[2 * i + 1]])), p]
    return [items, p]
  }
  throw new Error(`RESP client: bad reply type byte ${type}`)
}

function parseBulk (b: Buffer, line: string, nl: number, verbatim: boolean): [RespValue, number] | typeof NEED_MORE {
  const len = Number(line)
  if (len < 0) return [null, nl + 2]
  if (nl + 2 + len + 2 > b.length) return NEED_MORE
  // A verbatim string starts with its format ("txt:").
  return [b.subarray(nl + 2 + (verbatim ? 4 : 0), nl + 2 + len), nl + 2 + len + 2]
}

function parseItems (b: Buffer, pos: number, n: number): [RespValue[], number] | typeof NEED_MORE {
  const items: RespValue[] = []
  let p = pos
  for (let i = 0; i < n; i++) {
    const r = parseReply(b, p)
    if (r === NEED_MORE) return NEED_MORE
    items.push(r[0])
    p = r[1]
  }
  return [items, p]
}

export class KvClient {
  readonly socket: net.Socket
  private buf: Buffer = Buffer.alloc(0)
  private readonly batches: Batch[] = []
  private failure: Error | null = null
  private readonly inbox: RespValue[] = []
  private waiting: ((v: RespValue) => void) | null = null

  private constructor (socket: net.Socket) {
    this.socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (err) => this.fail(err))
    socket.on('close', () => this.fail(new Error('RESP client: connection closed')))
  }

  static async connect (port: number, host = '127.0.0.1'): Promise<KvClient> {
    const socket = net.connect({ port, host })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new KvClient(socket)
  }

  /** Sends all commands in one write; resolves with their replies in order. Error replies are RespError values. */
  async pipeline (cmds: Arg[][]): Promise<RespValue[]> {
    if (this.failure !== null) throw this.failure
    if (cmds.length === 0) return []
    const p = new Promise<RespValue[]>((resolve) => this.batches.push({ left: cmds.length, replies: [], resolve }))
    this.socket.write(encode(cmds))
    return await p
  }

  /** One command; an error reply is thrown. */
  async call (...args: Arg[]): Promise<RespValue> {
    const [r] = await this.pipeline([args])
    if (r instanceof RespError) throw r
    return r
  }

  /** Sends a command whose replies are read with `next` (SUBSCRIBE, a blocking pop). */
  send (...args: Arg[]): void {
    if (this.failure !== null) throw this.failure
    this.socket.write(encode([args]))
  }

  /** The next reply that answered no batch; rejects after `timeoutMs` or if the connection fails. */
  async next (timeoutMs = 10_000): Promise<RespValue> {
    const v = this.inbox.shift()
    if (v !== undefined) return v
    if (this.failure !== null) throw this.failure
    return await new Promise<RespValue>((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting = null; reject(new Error(`RESP client: no message within ${timeoutMs} ms`)) }, timeoutMs)
      this.waiting = (x) => { clearTimeout(timer); this.waiting = null; if (x instanceof Error && !(x instanceof RespError)) reject(x); else resolve(x) }
    })
  }

  /** Replies that arrived unasked and were not read yet. */
  get unread (): number {
    return this.inbox.length
  }

  async close (): Promise<void> {
    this.failure = new Error('RESP client: closed')
    await new Promise<void>((resolve) => this.socket.end(resolve))
  }

  private onData (chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    let pos = 0
    while (pos < this.buf.length) {
      const r = parseReply(this.buf, pos)
      if (r === NEED_MORE) break
      pos = r[1]
      const batch = this.batches[0]
      if (batch === undefined || r[0] instanceof RespPush) { this.toInbox(r[0]); continue }
      batch.replies.push(r[0])
      if (--batch.left === 0) {
        this.batches.shift()
        batch.resolve(batch.replies)
      }
    }
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(pos))
  }

  private toInbox (v: RespValue): void {
    if (this.waiting !== null) this.waiting(v)
    else this.inbox.push(v)
  }

  private fail (err: Error): void {
    if (this.failure === null) this.failure = err
    this.waiting?.(err as RespValue)
    for (const b of this.batches.splice(0)) {
      while (b.left-- > 0) b.replies.push(new RespError(err.message))
      b.resolve(b.replies)
    }
  }
}
