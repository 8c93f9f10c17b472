/** A minimal memcached text-protocol client: pipelined sets for loading, get and stats for probing. */
import net from 'node:net'

export class McClient {
  private buf = ''
  private waiters: { until: string, resolve: (s: string) => void }[] = []
  private constructor (readonly socket: net.Socket) {
    socket.setNoDelay(true)
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => { this.buf += d; this.pump() })
    socket.on('error', () => {})
    socket.on('close', () => { for (const w of this.waiters.splice(0)) w.resolve('CLOSED') })
  }

  static async connect (port: number): Promise<McClient> {
    const s = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
    return new McClient(s)
  }

  /** Sends `text`, resolves with everything up to and including the first `until` marker. */
  async request (text: string, until: string): Promise<string> {
    const p = new Promise<string>((resolve) => this.waiters.push({ until, resolve }))
    this.socket.write(text, 'latin1')
    return await p
  }

  /** Sets many keys in one write; resolves when all are STORED (or rejects on anything else). */
  async setMany (items: [string, Buffer][]): Promise<void> {
    const parts: string[] = []
    for (const [k, v] of items) parts.push(`set ${k} 0 0 ${v.length} noreply\r\n${v.toString('latin1')}\r\n`)
    parts.push('mn\r\n')
    const r = await this.request(parts.join(''), 'MN\r\n')
    if (r !== 'MN\r\n') throw new Error(`memcached: ${r.slice(0, 200)}`)
  }

  async stat (name: string): Promise<number> {
    const r = await this.request('stats\r\n', 'END\r\n')
    const m = new RegExp(`STAT ${name} (\\d+)`).exec(r)
    return m === null ? -1 : Number(m[1])
  }

  close (): void {
    this.socket.destroy()
  }

  private pump (): void {
    while (this.waiters.length > 0) {
      const w = this.waiters[0]
      const at = this.buf.indexOf(w.until)
      if (at < 0) return
      this.waiters.shift()
      w.resolve(this.buf.slice(0, at + w.until.length))
      this.buf = this.buf.slice(at + w.until.length)
    }
  }
}
