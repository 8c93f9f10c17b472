/** Shared test helpers: child peers on a channel, byte patterns, and fd/mapping leak counters. */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { channelPair, type Channel } from '../src/index.ts'

export const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures')

setFlagsFromString('--expose-gc')
const gcFn = runInNewContext('gc') as () => void

/** Collects garbage and lets finalizers and threadpool unmaps finish. */
export async function settle (): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gcFn()
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export function fdCount (): number {
  return readdirSync('/proc/self/fd').length
}

/** Mappings of memfds (giftable pages) in this process. */
export function memfdMappings (): number {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/memfd:')).length
}

/** Deterministic bytes for a seed, so both sides can check content without sending it twice. */
export function fillPattern (view: Uint8Array, seed: number): Uint8Array {
  let x = (seed * 2654435761) >>> 0 || 1
  if (view.byteOffset % 4 === 0) {
    const words = new Uint32Array(view.buffer, view.byteOffset, view.byteLength >>> 2)
    for (let i = 0; i < words.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; words[i] = x >>> 0 }
    for (let i = words.length * 4; i < view.byteLength; i++) view[i] = (seed + i) & 255
  } else {
    for (let i = 0; i < view.byteLength; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; view[i] = x & 255 }
  }
  return view
}

export function digest (views: ArrayBufferView[] | ArrayBuffer[]): string {
  const h = createHash('sha256')
  for (const v of views) h.update(v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
  return h.digest('hex')
}

export interface Peer { ch: Channel, child: ChildProcess, exited: Promise<number | null> }

/** Spawns test/fixtures/<name> with one end of a channel as its fd 3. */
export function spawnPeer (name: string, env: Record<string, string> = {}, opts: { uid?: number, gid?: number } = {}): Peer {
  const [mine, theirs] = channelPair()
  const child = spawn(process.execPath, ['--import', 'tsx', join(fixtures, name)], {
    stdio: ['ignore', 'inherit', 'inherit', theirs.fd],
    env: { ...process.env, ...env },
    ...opts,
  })
  theirs.close()
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { ch: mine, child, exited }
}

/** Sends a command to a gift-peer fixture and returns its JSON reply. */
export async function ask (ch: Channel, msg: Record<string, unknown>): Promise<Record<string, unknown>> {
  await ch.send(msg)
  const reply = await ch.recv({ timeoutMs: 60_000 })
  const out = reply.msg as Record<string, unknown>
  if (typeof out.error === 'string') throw Object.assign(new Error(out.error), { code: out.code })
  return out
}
