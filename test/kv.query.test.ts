import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { QueryBuffer } from '../src/kv/query.ts'
import { RespParser } from '../src/kv/resp.ts'
import { heapAllocator } from '../src/kv/segments.ts'
import { defaultAllocator } from '../src/kv/alloc.ts'
import { encode } from '../src/kv/client.ts'
import { Conn } from '../src/kv/conn.ts'
import { Ctx } from '../src/kv/commands/context.ts'
import { Reply } from '../src/kv/reply.ts'
import { KvServer } from '../src/kv/server.ts'
import { Store } from '../src/kv/store.ts'

/** Every command a QueryBuffer yields for `chunks`, as lists of argument strings, then what it says at the end. */
function feedAll (chunks: Buffer[]): { cmds: string[][], outcome: string, q: QueryBuffer } {
  const q = new QueryBuffer(heapAllocator)
  const cmds: string[][] = []
  const run = (p: RespParser): boolean => {
    const args: string[] = []
    for (let i = 0; i < p.argc; i++) args.push(p.buf.toString('latin1', p.start[i], p.end[i]))
    cmds.push(args)
    return true
  }
  let outcome = 'ok'
  for (const c of chunks) {
    outcome = q.feed(c, run)
    if (outcome !== 'ok') break
  }
  return { cmds, outcome, q }
}

function split (b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size))
  return out
}

/** A 2.8 MB MSET of many small arguments: the shape that made the old parser quadratic. */
function bigMset (): { wire: Buffer, n: number } {
  const cmd: string[] = ['MSET']
  for (let i = 0; i < 100_000; i++) cmd.push(`key:${i}`, `val:${i}`)
  return { wire: encode([cmd, ['GET', 'key:7']]), n: cmd.length }
}

test('query buffer: a command split anywhere parses as in one read (random splits, printed seed)', (t) => {
  const seed = Number(process.env.KV_QUERY_SEED ?? Date.now() % 1e9)
  t.diagnostic(`seed ${seed} (rerun with KV_QUERY_SEED=${seed})`)
  let x = seed
  const rnd = (n: number): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % n }
  for (let round = 0; round < 200; round++) {
    const cmds: (string | Buffer)[][] = []
    for (let i = rnd(6) + 1; i > 0; i--) {
      const args: (string | Buffer)[] = [['SET', 'GET', 'MSET', 'PING'][rnd(4)]]
      for (let a = rnd(5); a > 0; a--) args.push(rnd(10) === 0 ? Buffer.alloc(rnd(200_000), 65 + rnd(26)) : `a${rnd(1000)}\r\n`)
      cmds.push(args)
    }
    let wire = encode(cmds)
    if (rnd(3) === 0) wire = Buffer.concat([Buffer.from('PING  x\r\nECHO y\n'), wire])
    const whole = feedAll([wire])
    const cuts = new Set<number>()
    for (let i = rnd(40); i > 0; i--) cuts.add(rnd(wire.length))
    const at = [0, ...[...cuts].sort((a, b) => a - b), wire.length]
    const chunks = at.slice(1).map((end, i) => wire.subarray(at[i], end))
    const pieces = feedAll(chunks)
    assert.equal(whole.outcome, 'ok')
    assert.deepEqual(pieces.cmds, whole.cmds, `seed ${seed}, round ${round}, cuts ${at.join(',')}`)
    assert.equal(pieces.q.len, 0, `seed ${seed}: bytes left over`)
  }
})

test('query buffer: a multi-MB command in 200-byte reads costs work linear in its size', () => {
  const { wire, n } = bigMset()
  const t0 = performance.now()
  const { cmds, q } = feedAll(split(wire, 200))
  const ms = performance.now() - t0
  assert.equal(cmds.length, 2)
  assert.equal(cmds[0].length, n)
  assert.deepEqual(cmds[1], ['GET', 'key:7'])
  assert.ok(q.parser.steps <= 2 * wire.length, `${q.parser.steps} parser steps for ${wire.length} bytes`)
  assert.ok(q.copied <= 3 * wire.length, `${q.copied} bytes copied for ${wire.length} bytes`)
  assert.ok(ms < 2000, `${ms.toFixed(0)} ms`)
  // One 4 MiB bulk: its bytes are copied once (plus one grow), and looked at only for its CRLF.
  const value = Buffer.alloc(4 << 20, 7)
  const one = feedAll(split(encode([['SET', 'k', value]]), 200))
  assert.equal(one.cmds[0][2].length, value.length)
  assert.ok(one.q.copied <= 2 * value.length && one.q.parser.steps < 1000, `${one.q.copied} copied, ${one.q.parser.steps} steps`)
})

test('query buffer: protocol errors, the unauthenticated limits, and room for a big bulk in giftable memory', () => {
  assert.equal(feedAll([Buffer.from('*1\r\n$3\r\nab')]).outcome, 'ok')
  const bad = feedAll([Buffer.from('*1\r\n$3'), Buffer.from('\r\nabcX\r\n')])
  assert.equal(bad.outcome, 'error')
  assert.match(bad.q.parser.error, /invalid bulk terminator/)
  const q = new QueryBuffer(heapAllocator)
  q.parser.unauthenticated = true
  assert.equal(q.feed(Buffer.from('*11\r\n'), () => true), 'error')
  assert.equal(q.parser.error, 'ERR Protocol error: unauthenticated multibulk length')
  assert.equal(q.feed(Buffer.from('*1\r\n$16385\r\n'), () => true), 'error')
  assert.equal(q.parser.error, 'ERR Protocol error: unauthenticated bulk length')
  // Giftable memory: a 512 MiB buffer costs nothing until written.
  const big = new QueryBuffer(defaultAllocator())
  assert.equal(big.feed(Buffer.from('*3\r\n$536870912\r\nx'), () => true), 'ok')
  assert.ok(big.region !== null && big.region.byteLength > 512 << 20, 'room for the whole announced bulk at once')
  assert.equal(big.feed(Buffer.from('*'), () => false), 'ok')
  big.release()
  assert.equal(big.region, null)
})

/** A stand-in socket: Conn only listens to it and writes to it. */
function fakeSocket (): Socket & { written: Buffer[] } {
  const s = new EventEmitter() as unknown as Socket & { written: Buffer[] }
  Object.assign(s, {
    written: [] as Buffer[],
    destroyed: false,
    writableLength: 0,
    setNoDelay: () => s,
    write: (b: Buffer) => { s.written.push(b); return true },
    end: () => s,
    pause: () => s,
    resume: () => s,
    isPaused: () => false,
    read: () => null
  })
  return s
}

test('a client connection fed a 2.8 MB MSET in 200-byte reads runs it well within 2 s', async () => {
  const store = new Store({ segmentSize: 16 << 20 })
  const server = new KvServer(store)
  const host = { ctx: new Ctx(store, new Reply(), server), allocator: heapAllocator, requirePass: false, parser: new RespParser(), commands: 0, beginBatch: () => {}, closed: () => {} }
  const socket = fakeSocket()
  const conn = new Conn(1, socket, host)
  const { wire } = bigMset()
  const t0 = performance.now()
  // Ranges of the one buffer, as the reactor passes its shared buffer's.
  for (let at = 0; at < wire.length; at += 200) conn.onData(wire, at, Math.min(wire.length, at + 200))
  const ms = performance.now() - t0
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(Buffer.concat(socket.written).toString(), '+OK\r\n$5\r\nval:7\r\n')
  assert.equal(store.size, 100_000)
  assert.ok(ms < 2000, `${ms.toFixed(0)} ms`)
})

test('a big query buffer is giftable memory while the command comes in, and its mapping is gone once it has run', async () => {
  const mapped = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('pagegift-kv.query')).length
  const store = new Store({ segmentSize: 16 << 20 })
  const server = new KvServer(store)
  const host = { ctx: new Ctx(store, new Reply(), server), allocator: defaultAllocator(), requirePass: false, commands: 0, beginBatch: () => {}, closed: () => {} }
  const socket = fakeSocket()
  const conn = new Conn(1, socket, host)
  const before = mapped()
  const wire = encode([['SET', 'big', Buffer.alloc(3 << 20, 9)], ['STRLEN', 'big']])
  const pieces = split(wire, 65536)
  for (const c of pieces.slice(0, -1)) conn.onData(c, 0, c.length)
  assert.ok(conn.query.region !== null, 'the unfinished 3 MiB command is in giftable memory')
  assert.equal(mapped(), before + 1)
  const last = pieces[pieces.length - 1]
  conn.onData(last, 0, last.length)
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(Buffer.concat(socket.written).toString(), `+OK\r\n:${3 << 20}\r\n`)
  assert.equal(conn.query.region, null)
  // release() unmaps on the threadpool: give that job a bounded moment to run.
  for (const until = Date.now() + 5000; mapped() !== before && Date.now() < until;) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(mapped(), before, 'the query buffer mapping leaked')
})
