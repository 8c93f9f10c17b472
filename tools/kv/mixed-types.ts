/**
 * A checked workload over every type, MULTI and pub/sub, for live-upgrade soaks. Each worker owns its
 * keys (in its own database) and keeps a model of them, so that every reply can be checked and, at
 * the end, every key's type, value and TTL compared. A subscriber counts PUBLISHed messages in order.
 * Connections are never reopened: a dropped one is an error, as it is for a real client.
 */
import net from 'node:net'
import { KvClient, RespError, parseReply, type Arg, type RespValue } from '../../src/kv/client.ts'

type Model = Map<string, { type: string, value: string[] | Map<string, string>, at: number }>

export interface TypesStats { batches: number, errors: number, firstError: string, published: number, received: number, outOfOrder: number }

const FAR = Date.now() + 86_400_000

export class TypesWorkload {
  readonly stats: TypesStats = { batches: 0, errors: 0, firstError: '', published: 0, received: 0, outOfOrder: 0 }
  readonly models: Model[] = []
  private running = false
  private loops: Promise<void>[] = []
  private sub: net.Socket | null = null

  constructor (private readonly port: number, private readonly workers = 4, private readonly dbs = 4) {}

  async start (): Promise<void> {
    this.running = true
    await this.subscribe()
    const clients = await Promise.all(Array.from({ length: this.workers }, async () => await KvClient.connect(this.port)))
    this.loops = clients.map(async (c, w) => await this.work(c, w))
    const pub = await KvClient.connect(this.port)
    this.loops.push(this.publish(pub))
  }

  async stop (): Promise<TypesStats> {
    this.running = false
    await Promise.all(this.loops)
    const deadline = Date.now() + 15_000
    while (this.stats.received < this.stats.published && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    this.sub?.destroy()
    return this.stats
  }

  private fail (what: string): void {
    this.stats.errors++
    if (this.stats.firstError === '') this.stats.firstError = what
  }

  private async subscribe (): Promise<void> {
    const s = net.connect(this.port, '127.0.0.1')
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
    let buf = Buffer.alloc(0)
    let next = 0
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      let pos = 0
      for (;;) {
        const r = parseReply(buf, pos)
        if (typeof r === 'symbol') break
        pos = r[1]
        const m = r[0] as RespValue[]
        if (String(m[0]) !== 'message') continue
        if (Number(String(m[2])) !== next) this.stats.outOfOrder++
        next = Number(String(m[2])) + 1
        this.stats.received++
      }
      buf = buf.subarray(pos)
    })
    s.on('close', () => { if (this.running) this.fail('subscriber connection closed') })
    s.write('*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n')
    await new Promise((resolve) => setTimeout(resolve, 100))
    this.sub = s
  }

  private async publish (c: KvClient): Promise<void> {
    while (this.running) {
      const r = await c.pipeline([['PUBLISH', 'news', this.stats.published]])
      if (r[0] instanceof RespError || r[0] !== 1) this.fail(`PUBLISH answered ${String(r[0])}`)
      this.stats.published++
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    await c.close()
  }

  /** Batches until stopped, every reply checked. */
  private async work (c: KvClient, w: number): Promise<void> {
    const model: Model = new Map()
    this.models[w] = model
    const db = w % this.dbs
    const sel = await c.pipeline([['SELECT', db]])
    if (String(sel[0]) !== 'OK') this.fail(`SELECT ${db}: ${String(sel[0])}`)
    for (let seq = 0; this.running; seq++) {
      const { cmds, checks } = batch(model, w, seq)
      let replies: RespValue[]
      try {
        replies = await c.pipeline(cmds)
      } catch (err) {
        this.fail(`worker ${w}: ${(err as Error).message}`)
        return
      }
      replies.forEach((r, i) => {
        if (r instanceof RespError || !checks[i](r)) this.fail(`worker ${w} ${String(cmds[i][0])}: ${String(r)}`)
      })
      this.stats.batches++
    }
    await c.close()
  }

  /** Compares every key of every worker with its model: type, value and PEXPIRETIME. Returns the differences. */
  async verify (): Promise<string[]> {
    const c = await KvClient.connect(this.port)
    const bad: string[] = []
    for (const [w, model] of this.models.entries()) {
      await c.call('SELECT', w % this.dbs)
      for (const [key, e] of model) {
        const got = await readKey(c, key, e.type)
        const want = e.value instanceof Map ? [...e.value.entries()].map(([a, b]) => `${a}=${b}`).sort() : e.value
        const at = Number(await c.call('PEXPIRETIME', key))
        if (JSON.stringify(got) !== JSON.stringify(want) || at !== (e.at === 0 ? -1 : e.at)) bad.push(`${key}: ${JSON.stringify(got).slice(0, 80)} ttl ${at}, want ${JSON.stringify(want).slice(0, 80)} ttl ${e.at}`)
      }
    }
    await c.close()
    return bad
  }
}

async function readKey (c: KvClient, key: string, type: string): Promise<string[]> {
  const t = String(await c.call('TYPE', key))
  if (t !== type) return [`type ${t}`]
  const strs = (r: RespValue): string[] => (r as Buffer[]).map(String)
  const pairs = (x: string[]): string[] => x.filter((_, i) => i % 2 === 0).map((a, i) => `${a}=${x[2 * i + 1]}`).sort()
  if (type === 'string') return [String(await c.call('GET', key))]
  if (type === 'list') return strs(await c.call('LRANGE', key, 0, -1))
  if (type === 'set') return strs(await c.call('SMEMBERS', key)).map((m) => `${m}=`).sort()
  if (type === 'hash') return pairs(strs(await c.call('HGETALL', key)))
  return pairs(strs(await c.call('ZRANGE', key, 0, -1, 'WITHSCORES')))
}

/** One batch for worker `w`: a write to each type, an expiry and a MULTI/EXEC, applied to its model as built. */
function batch (model: Model, w: number, seq: number): { cmds: Arg[][], checks: Array<(r: RespValue) => boolean> } {
    const k = (t: string): string => `w${w}:${t}:${seq % 7}`
    const cmds: Arg[][] = []
    const checks: Array<(r: RespValue) => boolean> = []
    const add = (cmd: Arg[], check: (r: RespValue) => boolean, apply: () => void): void => { cmds.push(cmd); checks.push(check); apply() }
    const entry = (key: string, type: string, empty: () => string[] | Map<string, string>): { type: string, value: string[] | Map<string, string>, at: number } => {
      let e = model.get(key)
      if (e === undefined) { e = { type, value: empty(), at: 0 }; model.set(key, e) }
      return e
    }
    // Each expectation is computed before its command's effect is applied to the model.
    add(['SET', k('s'), `v${seq}`], (r) => r === 'OK', () => { model.set(k('s'), { type: 'string', value: [`v${seq}`], at: 0 }) })
    const list = entry(k('l'), 'list', () => []).value as string[]
    const len = list.length + 2
    add(['RPUSH', k('l'), `a${seq}`, `b${seq}`], (r) => r === len, () => { list.push(`a${seq}`, `b${seq}`) })
    if (seq % 3 === 0) {
      const first = list[0]
      add(['LPOP', k('l')], (r) => String(r) === first, () => { list.shift() })
    }
    const set = entry(k('set'), 'set', () => new Map()).value as Map<string, string>
    const sNew = set.has(`m${seq % 13}`) ? 0 : 1
    add(['SADD', k('set'), `m${seq % 13}`], (r) => r === sNew, () => { set.set(`m${seq % 13}`, '') })
    const z = entry(k('z'), 'zset', () => new Map()).value as Map<string, string>
    const zNew = z.has(`z${seq % 11}`) ? 0 : 1
    add(['ZADD', k('z'), seq / 4, `z${seq % 11}`], (r) => r === zNew, () => { z.set(`z${seq % 11}`, String(seq / 4)) })
    const h = entry(k('h'), 'hash', () => new Map()).value as Map<string, string>
    const hNew = h.has(`f${seq % 5}`) ? 0 : 1
    add(['HSET', k('h'), `f${seq % 5}`, `x${seq}`], (r) => r === hNew, () => { h.set(`f${seq % 5}`, `x${seq}`) })
    const at = FAR + seq
    add(['PEXPIREAT', k('h'), at], (r) => r === 1, () => { entry(k('h'), 'hash', () => new Map()).at = at })
    const counter = entry(`w${w}:counter`, 'string', () => ['0']).value as string[]
    const incr = Number(counter[0]) + 1
    cmds.push(['MULTI'], ['INCR', `w${w}:counter`], ['RPUSH', `w${w}:log`, seq], ['EXEC'])
    checks.push((r) => r === 'OK', (r) => r === 'QUEUED', (r) => r === 'QUEUED', (r) => Array.isArray(r) && r[0] === incr)
    counter[0] = String(incr)
    ;(entry(`w${w}:log`, 'list', () => []).value as string[]).push(String(seq))
  return { cmds, checks }
}
