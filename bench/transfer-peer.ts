/**
 * The receiving process of `npm run bench -- transfer`. bench/transfer.ts forks it with a pagegift
 * channel end on fd 3 and Node's IPC (serialization: 'advanced') on fd 4; it connects a net Unix
 * socket when asked. Each transfer is timed here, from the parent's start stamp to the moment the
 * bytes are usable in this process: process.hrtime.bigint() is CLOCK_MONOTONIC, one clock for every
 * process on the host. Results go back on the channel.
 */
import { connect, type Socket } from 'node:net'
import { Channel, alloc, isGiftable, release } from '../src/index.ts'
import { serveCommands, type Command } from '../tools/command-loop.ts'

type Cmd = Command

const ch = Channel.fromFd(3)
const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => {})
const now = (): bigint => process.hrtime.bigint()
/** As in transfer.ts: from this size on, a full GC runs between runs, outside the timed part. */
const SETTLE_BYTES = 64 * 1024 * 1024

/** Giftable memory of this process, written once before use: the pre-touched target of a size. */
let target: Uint8Array | undefined
/** The net socket of the current size, reading straight into `target`. */
let net: { socket: Socket, want: number, got: number, seed: number, done?: (end: bigint) => void } | undefined

/** Checks a few bytes against the run's seed: proves the transfer happened without reading it all. */
function intact (view: Uint8Array, size: number, seed: number): boolean {
  return view.byteLength >= size && [0, size >> 1, size - 1].every((i) => view[i] === seed)
}

function theTarget (): Uint8Array {
  if (target === undefined) throw new Error('no target: send {op: "target"} first')
  return target
}

/**
 * Receives one gift and reports its time. `into`: 'warm' names the pre-touched target; 'untouched'
 * names new giftable memory that was never written (pages moved into it replace its own); none lets
 * receive() allocate.
 */
async function receiveGift (cmd: Cmd): Promise<void> {
  const size = cmd.size as number
  const into = cmd.into === 'warm' ? theTarget().subarray(0, size) : cmd.into === 'untouched' ? new Uint8Array(alloc(size)) : undefined
  // Let the GC that a big new ArrayBuffer sets off finish before the clock starts.
  if (cmd.into === 'untouched' && size >= SETTLE_BYTES) gc()
  const pending = ch.receive(into !== undefined ? { into } : {})
  await ch.send({ ready: true })
  const g = await pending
  const end = now()
  const ok = intact(into ?? new Uint8Array(g.buffers[0]), size, cmd.seed as number)
  // Inline gifts arrive as plain ArrayBuffers, which the GC frees.
  if (cmd.into !== 'warm') for (const b of g.buffers) if (isGiftable(b)) release(b)
  await ch.send({ ns: String(end - BigInt((g.meta as { t0: string }).t0)), path: g.path, ok })
}

process.on('message', (m: { t0: string, seed: number, data: Uint8Array }) => {
  const end = now()
  const reply = { ns: String(end - BigInt(m.t0)), ok: intact(m.data, m.data.byteLength, m.seed) }
  ch.send(reply).then(() => { if (m.data.byteLength >= SETTLE_BYTES) setImmediate(gc) }, (err) => { throw err })
})

/** Node fails a read into a buffer of 4 GiB or more (ENOBUFS), so reads get at most this much room. */
const MAX_READ = 1024 * 1024 * 1024

/** Connects to the parent's socket; every read lands in `target` right after the bytes before it. */
async function netConnect (path: string): Promise<void> {
  const view = theTarget()
  const room = (): Uint8Array => {
    // A stream bigger than the target (many small messages) overwrites it from the start: only the count matters.
    const fits = net !== undefined && net.got < net.want && net.want <= view.byteLength
    const at = fits ? (net as { got: number }).got : 0
    const end = fits ? (net as { want: number }).want : view.byteLength
    return view.subarray(at, Math.min(end, at + MAX_READ))
  }
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ path, onread: { buffer: room, callback: (n: number) => { netRead(n); return true } } }, () => {
      s.off('error', reject)
      resolve(s)
    })
    s.on('error', reject)
  })
  socket.on('error', (err) => {
    process.stderr.write(`transfer peer: net socket: ${err.message}\n`)
    process.exit(1)
  })
  net = { socket, want: 0, got: 0, seed: 0 }
}

function netRead (n: number): void {
  if (net === undefined) throw new Error('net read without a connection')
  net.got += n
  if (net.got > net.want) throw new Error(`net: ${net.got} bytes arrived, ${net.want} expected`)
  if (net.got === net.want) net.done?.(now())
}

async function netReceive (cmd: Cmd): Promise<void> {
  if (net === undefined) throw new Error('net receive without a connection')
  const state = net
  const size = cmd.size as number
  const end = new Promise<bigint>((resolve) => { state.done = resolve })
  Object.assign(state, { want: size, got: 0, seed: cmd.seed })
  await ch.send({ ready: true })
  const at = await end
  state.done = undefined
  await ch.send({ end: String(at), ok: cmd.check === false || intact(theTarget(), size, cmd.seed as number) })
}

/** Receives `n` gifts as fast as they come and reports when the last one was usable. */
async function streamGifts (cmd: Cmd): Promise<void> {
  const n = cmd.n as number
  const first = ch.receive()
  await ch.send({ ready: true })
  let g = await first
  for (let i = 1; i < n; i++) g = await ch.receive()
  const end = now()
  await ch.send({ end: String(end), path: g.path, reason: g.reason, ok: intact(new Uint8Array(g.buffers[0]), cmd.size as number, cmd.seed as number) })
}

/** Receives `n` messages of `size` bytes on the net socket (a byte stream: only the count marks them). */
async function streamNet (cmd: Cmd): Promise<void> {
  await netReceive({ ...cmd, size: (cmd.n as number) * (cmd.size as number), check: false })
}

async function run (cmd: Cmd): Promise<Record<string, unknown> | undefined> {
  switch (cmd.op) {
    case 'target': {
      if (target !== undefined) release(target.buffer as ArrayBuffer)
      target = new Uint8Array(alloc(cmd.size as number)).fill(cmd.seed as number)
      return { ok: true }
    }
    case 'drop':
      net?.socket.destroy()
      net = undefined
      if (target !== undefined) release(target.buffer as ArrayBuffer)
      target = undefined
      gc()
      return { ok: true }
    case 'gift':
      await receiveGift(cmd)
      return undefined
    case 'net-connect':
      await netConnect(cmd.path as string)
      return { ok: true }
    case 'net':
      await netReceive(cmd)
      return undefined
    case 'stream-gift':
      await streamGifts(cmd)
      return undefined
    case 'stream-net':
      await streamNet(cmd)
      return undefined
    default:
      throw new Error(`unknown op ${cmd.op}`)
  }
}

await serveCommands(ch, run)
