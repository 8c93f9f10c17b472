/**
 * A small pipelined RESP2 client, for the demo, the benchmarks and the tests. Every `pipeline` call
 * is one socket write; replies come back in order and resolve each batch's promise.
 */
import net from 'node:net'

export class RespError extends Error {}
export type RespValue = string | number | Buffer | null | RespError | RespValue[]
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
  if (type === 36) {
    const len = Number(line)
    if (len < 0) return [null, nl + 2]
    if (nl + 2 + len + 2 > b.length) return NEED_MORE
    return [b.subarray(nl + 2, nl + 2 + len), nl + 2 + len + 2]
  }
  if (type === 42) {
    const n = Number(line)
    if (n < 0) return [null, nl + 2]
    const items: RespValue[] = []
    let p = nl + 2
    for (let i = 0; i < n; i++) {
      const r = parseReply(b, p)
      if (r === NEED_MORE) return NEED_MORE
      items.push(r[0])
      p = r[1]
    }
    return [items, p]
  }
  throw new Error(`RESP client: bad reply type byte ${type}`)
}

export class KvClient {
  readonly socket: net.Socket
  private buf: Buffer = Buffer.alloc(0)
  private readonly batches: Batch[] = []
  private failure: Error | null = null

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
      if (batch === undefined) { this.fail(new Error('RESP client: reply without a request')); return }
      batch.replies.push(r[0])
      if (--batch.left === 0) {
        this.batches.shift()
        batch.resolve(batch.replies)
      }
    }
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(pos))
  }

  private fail (err: Error): void {
    if (this.failure === null) this.failure = err
    for (const b of this.batches.splice(0)) {
      while (b.left-- > 0) b.replies.push(new RespError(err.message))
      b.resolve(b.replies)
    }
  }
}
