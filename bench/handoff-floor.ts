/**
 * The least a Node.js handoff can pause on this machine: the same TCP service and clients as the
 * handoff bench, handed over with everything pagegift's protocol adds left out. A generation is
 * `node --import tsx bench/handoff-floor.ts gen`; the driver is run() (`npm run bench --
 * handoff-floor`).
 *
 * Before the pause the successor has everything: the listener and the connections (dups sent over a
 * SOCK_SEQPACKET socket while the old generation serves), wrapped as held net.Sockets, its request
 * code warmed on loopback connections of its own. The pause is one message: the old generation stops
 * reading, sends GO with its counters and the bytes it read and did not parse, and lowers its
 * priority; the successor starts reading and listening. No rollback, no validation, no phases, no
 * regions: a handoff that cannot fail safely, as a floor for one that can. bench/handoff-floor.c is
 * the same generation in C (no JavaScript at all), and run() times pagegift's own handoff (the
 * handoff bench's service) in the same run, in interleaved blocks.
 *
 * FLOOR_VERBOSE=1 prints each handoff's steps; FLOOR_SETTLE=<ms> makes a Node generation wait that
 * long after its warm-up before it connects (for the compile jobs the warm-up started to finish).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defaultEnv } from '../src/handoff/env.ts'
import { native, PollEvents } from '../src/native.ts'
import { handoffs } from './handoff.ts'
import { cClients, remoteClients, reports, type Reports } from './handoff-load.ts'
import { compileC, formatMs, printTable, stats, writeResults } from './lib.ts'

const here = fileURLToPath(import.meta.url)

interface Conn { buf: string }
interface StreamHandle { fd: number, reading: boolean, readStart(): number, readStop(): number }
const handleOf = (s: net.Socket): StreamHandle => (s as unknown as { _handle: StreamHandle })._handle
const say = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify({ pid: process.pid, ...o }) + '\n') }

/** One generation: serves, hands over to the next, exits. */
async function generation (): Promise<void> {
  const dir = process.env.FLOOR_DIR as string
  const gen = Number(process.env.FLOOR_GEN)
  const counters = new Float64Array(64)
  const conns = new Map<net.Socket, Conn>()
  let paused = false
  const marks: Record<string, bigint> = {}

  const serve = (socket: net.Socket, pending: string): void => {
    const c: Conn = { buf: pending }
    conns.set(socket, c)
    socket.on('close', () => conns.delete(socket))
    socket.on('error', () => {})
    const drain = (): void => {
      let nl: number
      while (!paused && (nl = c.buf.indexOf('\n')) >= 0) {
        const line = c.buf.slice(0, nl)
        c.buf = c.buf.slice(nl + 1)
        const slot = Number(line.split(' ')[1]) % counters.length
        counters[slot]++
        socket.write(`${gen} ${counters[slot]}\n`)
      }
    }
    socket.on('data', (d: Buffer) => { marks.firstData ??= process.hrtime.bigint(); c.buf += d.toString('latin1'); drain(); marks.firstWrite ??= process.hrtime.bigint() })
    if (c.buf.length > 0) {
      marks.firstData ??= process.hrtime.bigint()
      drain()
      marks.firstWrite ??= process.hrtime.bigint()
    }
  }

  // Warm the request path on loopback connections of our own, as a real successor would.
  {
    const server = net.createServer((s) => serve(s, ''))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as net.AddressInfo).port
    const clients = Array.from({ length: 8 }, () => net.connect(port, '127.0.0.1'))
    const ask = async (): Promise<void> => { await Promise.all(clients.map(async (c) => { for (let i = 0; i < 300; i++) await new Promise<void>((resolve) => { c.once('data', () => resolve()); c.write(`INC ${i}\n`) }) })) }
    await ask()
    {
      // The handoff's own steps, on dups of these connections: the stop, the held wrap, and after
      // GO the reads, the uncork and a listen on an inherited fd (median gap 2.45 -> 2.03 ms in a
      // run of 40 each, the C floor unchanged beside them).
      const first = [...conns.keys()]
      const dups = first.map((s) => { s.pause(); handleOf(s).readStop(); return native.dup(handleOf(s).fd) })
      const held = dups.map((fd) => {
        const s = new net.Socket({ fd, readable: true, writable: true, manualStart: true } as net.SocketConstructorOpts)
        handleOf(s).reading = true
        s.cork()
        return s
      })
      for (const s of first) conns.delete(s)
      for (const s of held) { serve(s, ''); handleOf(s).readStart(); s.uncork() }
      const again = net.createServer((x) => serve(x, ''))
      again.listen({ fd: native.dup((server as unknown as { _handle: { fd: number } })._handle.fd) })
      await ask()
      again.close()
      for (const s of first) s.destroy()
    }
    for (const c of clients) c.destroy()
    for (const s of conns.keys()) s.destroy()
    server.close()
    counters.fill(0)
    for (const k of Object.keys(marks)) delete marks[k]
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.FLOOR_SETTLE ?? 0)))
  }

  const buf = new Uint8Array(65536)
  const out = new Int32Array(2 + 64)
  const recv = (fd: number): { text: string, fds: number[] } | null => {
    const n = native.recvmsg(fd, buf, out)
    if (n < 0) return null
    return { text: Buffer.from(buf.buffer, 0, n).toString(), fds: Array.from(out.subarray(2, 2 + out[0])) }
  }
  const send = (fd: number, o: unknown, fds: number[] = []): void => {
    const n = native.sendmsg(fd, [Buffer.from(JSON.stringify(o))], fds)
    if (n < 0) throw new Error(`sendmsg: ${n}`)
  }

  let server: net.Server
  if (gen === 1) {
    server = net.createServer((s) => serve(s, ''))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    say({ event: 'listening', port: (server.address() as net.AddressInfo).port })
  } else {
    // Take over from generation gen - 1: OFFER (fds), PREPARED, GO.
    const ctl = native.connect(join(dir, `ctl${gen - 1}`))
    if (ctl < 0) throw new Error(`connect: ${ctl}`)
    const held: net.Socket[] = []
    let listenFd = -1
    server = net.createServer((s) => serve(s, ''))
    await new Promise<void>((resolve) => {
      const poll = native.pollStart(ctl, PollEvents.Readable, () => {
        const m = recv(ctl)
        if (m === null) return
        const o = JSON.parse(m.text) as { t: string, counters?: number[], pending?: string[] }
        if (o.t === 'offer') {
          listenFd = m.fds[0]
          for (const fd of m.fds.slice(1)) {
            const s = new net.Socket({ fd, readable: true, writable: true, manualStart: true } as net.SocketConstructorOpts)
            handleOf(s).reading = true
            s.cork()
            held.push(s)
          }
          send(ctl, { t: 'prepared' })
          return
        }
        // GO: the pause ends here.
        marks.go = process.hrtime.bigint()
        counters.set(o.counters as number[])
        held.forEach((s, i) => {
          serve(s, (o.pending as string[])[i])
          handleOf(s).readStart()
          s.uncork()
        })
        server.listen({ fd: listenFd })
        marks.listened = process.hrtime.bigint()
        if (typeof poll !== 'number') native.pollClose(poll)
        native.close(ctl)
        resolve()
      })
    })
  }

  // Wait for the next generation on our control socket.
  const lfd = native.listen(join(dir, `ctl${gen}`), 4)
  if (lfd < 0) throw new Error(`listen: ${lfd}`)
  setTimeout(() => say({ event: 'serving', ...Object.fromEntries(Object.entries(marks).map(([k, v]) => [k, v.toString()])) }), 20)
  const lpoll = native.pollStart(lfd, PollEvents.Readable, () => {
    const ctl = native.accept(lfd)
    if (ctl < 0) return
    if (typeof lpoll !== 'number') native.pollClose(lpoll)
    const sockets = [...conns.keys()]
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd
    send(ctl, { t: 'offer' }, [fd, ...sockets.map((s) => handleOf(s).fd)])
    const poll = native.pollStart(ctl, PollEvents.Readable, () => {
      if (recv(ctl) === null) return
      if (typeof poll !== 'number') native.pollClose(poll)
      // The pause: stop reading, hand over the counters and the unparsed bytes, go.
      paused = true
      const stoppedAt = process.hrtime.bigint()
      const pending = sockets.map((s) => {
        s.pause()
        handleOf(s).readStop()
        return (conns.get(s) as Conn).buf
      })
      ;(server as unknown as { _handle: { close(): void } })._handle.close()
      send(ctl, { t: 'go', counters: [...counters], pending })
      defaultEnv.yieldCpu()
      setTimeout(() => { say({ event: 'handedOff', stoppedAt: stoppedAt.toString() }); setTimeout(() => process.exit(0), 50) }, 30)
    })
  })
}

/** A generation's process, and its reports as they come. */
interface Gen extends Reports { child: ChildProcess }

/** Starts generation `gen` with `cmd` (it is killed with its chain if still running then). */
function start (cmd: string[], dir: string, gen: number, started: Gen[]): Gen {
  const child = spawn(cmd[0], cmd.slice(1), { env: { ...process.env, FLOOR_DIR: dir, FLOOR_GEN: String(gen) }, stdio: ['ignore', 'pipe', 'inherit'] })
  const g = { child, ...reports(child, `generation ${gen}`) }
  started.push(g)
  return g
}

/** Where a floor handoff's gap goes, in ms (the worst client's gap; the rest from GO, or to the stop). */
type View = Record<'gap' | 'before' | 'go' | 'open' | 'firstData' | 'firstWrite' | 'firstAnswer' | 'lastAnswer', number>

/** `handoffs` floor handoffs (after 2 warm-up ones) of one chain of generations run by `cmd`. */
export async function chain (cmd: string[], handoffs: number, nClients: number, clientsBin?: string): Promise<View[]> {
  const dir = mkdtempSync(join(tmpdir(), 'pagegift-floor-'))
  const started: Gen[] = []
  let clients: ReturnType<typeof remoteClients> | undefined
  const views: View[] = []
  try {
    let prev = start(cmd, dir, 1, started)
    clients = remoteClients((await prev.wait('listening', 30_000)).port as number, nClients, clientsBin)
    // The clients process takes about half a second to start and connect: they must have been served
    // by generation 1 before generation 2 takes over, or they see no crossing.
    await new Promise((resolve) => setTimeout(resolve, 2000))
    for (let g = 2; g < 4 + handoffs; g++) {
      const next = start(cmd, dir, g, started)
      const m = await next.wait('serving', 30_000)
      const seen = await Promise.all(clients.map(async (c) => await c.crossing(g, 10_000)))
      const stopped = BigInt((await prev.wait('handedOff', 30_000)).stoppedAt as string)
      const edges = clients.map((c) => c.edges.get(g) as { last: bigint, first: bigint })
      const ms = (ns: bigint): number => Number(ns) / 1e6
      const lastBefore = edges.reduce((a, e) => (e.last < a ? e.last : a), edges[0].last)
      const firstAfter = edges.reduce((a, e) => (e.first < a ? e.first : a), edges[0].first)
      const lastAfter = edges.reduce((a, e) => (e.first > a ? e.first : a), edges[0].first)
      const go = BigInt(m.go as string)
      const at = (k: string): number => ms(BigInt(m[k] as string) - go)
      const view = { gap: Math.max(...seen), before: ms(stopped - lastBefore), go: ms(go - stopped), open: at('listened'), firstData: at('firstData'), firstWrite: at('firstWrite'), firstAnswer: ms(firstAfter - go), lastAnswer: ms(lastAfter - go) }
      if (g >= 4) views.push(view)
      if (process.env.FLOOR_VERBOSE === '1') process.stdout.write(JSON.stringify({ ...view, goAt: (Number(go) / 1e9).toFixed(6), successor: next.child.pid, predecessor: prev.child.pid }) + '\n')
      prev = next
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  } finally {
    clients?.[0].close()
    for (const g of started) g.child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  return views
}

/**
 * `npm run bench -- handoff-floor [--handoffs=60] [--clients=8] [--block=20] [--c-clients]`:
 * pagegift's handoff (the handoff bench's service, 64 MiB), the Node floor and the C floor, in
 * interleaved blocks of `--block` handoffs each, so that the three share the machine's mood; prints
 * the client-seen gap of each and pagegift's ratio to each floor, and writes the JSON. The clients
 * run in Node (bench/handoff-clients.ts), or with `--c-clients` in C (bench/handoff-clients.c).
 */
export async function run (args: string[]): Promise<void> {
  const opt = (name: string, d: number): number => Number(args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d)
  const total = opt('handoffs', 60)
  const nClients = opt('clients', 8)
  const block = Math.min(total, opt('block', 20))
  const bin = mkdtempSync(join(tmpdir(), 'pagegift-floor-bin-'))
  const sock = join(tmpdir(), `pagegift-bench-floor-${process.pid}.sock`)
  try {
    const built = compileC('handoff-floor', bin)
    if ('skipped' in built) process.stdout.write(`handoff-floor: ${built.skipped}: the C floor is left out\n`)
    const c = 'bin' in built ? built.bin : null
    const clientsBin = args.includes('--c-clients') ? cClients(bin) : undefined
    const impls: Array<{ name: string, run: (n: number) => Promise<{ gaps: number[], views?: View[] }> }> = [
      { name: 'pagegift (64 MiB region)', run: async (n) => ({ gaps: (await handoffs(64 * 1024 * 1024, n, 2, sock, nClients, clientsBin)).samples.clientGap }) },
      { name: 'Node floor (one message, no rollback)', run: async (n) => { const v = await chain([process.execPath, '--import', 'tsx', here, 'gen'], n, nClients, clientsBin); return { gaps: v.map((x) => x.gap), views: v } } },
      ...(c !== null ? [{ name: 'C floor (one message, no rollback)', run: async (n: number) => { const v = await chain([c], n, nClients, clientsBin); return { gaps: v.map((x) => x.gap), views: v } } }] : []),
    ]
    const got = impls.map(() => ({ gaps: [] as number[], views: [] as View[] }))
    for (let done = 0; done < total; done += block) {
      const n = Math.min(block, total - done)
      for (const [i, impl] of impls.entries()) {
        process.stdout.write(`handoff-floor: ${impl.name}, ${n} handoffs (${done + n}/${total}), ${nClients} ${clientsBin !== undefined ? 'C' : 'Node'} clients ...\n`)
        const r = await impl.run(n)
        got[i].gaps.push(...r.gaps)
        got[i].views.push(...r.views ?? [])
      }
    }
    const gap = got.map((g) => stats(g.gaps))
    printTable(impls.map((impl, i) => ({
      handoff: impl.name,
      handoffs: gap[i].runs,
      'client gap median': formatMs(gap[i].median),
      p99: formatMs(gap[i].p99),
      min: formatMs(gap[i].min),
      'pagegift / this': i === 0 ? '-' : `${(gap[0].median / gap[i].median).toFixed(2)}x (${formatMs(gap[0].median)} / ${formatMs(gap[i].median)})`,
    })))
    const keys = ['before', 'go', 'open', 'firstData', 'firstWrite', 'firstAnswer', 'lastAnswer'] as const
    const labels = { before: 'last answer -> stop', go: 'stop -> GO read', open: 'GO -> reading+listening', firstData: "GO -> first 'data'", firstWrite: 'GO -> its answer written', firstAnswer: 'GO -> first answer seen', lastAnswer: "GO -> last client's first answer" }
    process.stdout.write('\nthe floors\' gap, step by step (medians; the worst client\'s last answer, the rest from GO):\n')
    printTable(impls.flatMap((impl, i) => got[i].views.length === 0 ? [] : [{ handoff: impl.name, ...Object.fromEntries(keys.map((k) => [labels[k], formatMs(stats(got[i].views.map((v) => v[k])).median)])) }]))
    writeResults('handoff-floor', { clients: nClients, clientsIn: clientsBin !== undefined ? 'C' : 'Node', block, results: impls.map((impl, i) => ({ name: impl.name, clientGap: gap[i], samples: got[i].gaps, views: got[i].views })) })
  } finally {
    rmSync(bin, { recursive: true, force: true })
    rmSync(sock, { force: true })
  }
}

if (process.argv[2] === 'gen') await generation()
