/** Shared test helpers: child peers on a channel, byte patterns, and fd/mapping leak counters. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { channelPair, trimReceivePool, type Channel } from '../src/index.ts'

export const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures')
export const root = join(dirname(fileURLToPath(import.meta.url)), '..')

setFlagsFromString('--expose-gc')
const gcFn = runInNewContext('gc') as () => void

/**
 * Collects garbage and lets finalizers and threadpool unmaps finish. The receive pool is emptied
 * first: it keeps released receive targets mapped on purpose (test/pool.test.ts checks it by itself).
 */
export async function settle (): Promise<void> {
  trimReceivePool()
  for (let i = 0; i < 3; i++) {
    gcFn()
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** fdCount() once the fds that earlier work closes lazily (the loader, collected handles, timers) are gone. */
export async function settledFdCount (): Promise<number> {
  await settle()
  return fdCount()
}

/**
 * This process's open fds, without those of tsx's cache directory: the loader keeps one open while
 * it writes its cache and closes it when it is done, which on a cold cache (a fresh clone, as in CI)
 * can fall in the middle of the first test of a file and read as a fd the test closed.
 */
export function fdCount (): number {
  const loaderCache = join(tmpdir(), `tsx-${process.getuid?.() ?? ''}`)
  return readdirSync('/proc/self/fd').filter((fd) => {
    try { return !readlinkSync(`/proc/self/fd/${fd}`).startsWith(loaderCache) } catch { return false }
  }).length
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

/** Rejects with a clear error when `p` does not settle within `ms`: no test waits without a deadline. */
export async function withTimeout<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([p, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Runs a module `script` in a child process (tsx, from the checkout) with `env` added, and resolves
 * with its stdout once it exits 0. A non-zero exit rejects; a child still running after `timeoutMs`
 * is killed (SIGKILL), which rejects too.
 */
export async function runScript (script: string, env: Record<string, string> = {}, timeoutMs = 60_000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'], timeout: timeoutMs, killSignal: 'SIGKILL' })
    let out = ''
    child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    child.on('error', reject)
    child.on('exit', (code, signal) => code === 0 ? resolve(out) : reject(new Error(`child exited with ${String(code ?? signal)}`)))
  })
}

/**
 * Runs the `pagegift` CLI with `args` and resolves at its exit with what it printed. A CLI still
 * running after `timeoutMs` is killed, and the promise rejects saying so. (A committed successor
 * that inherits its stdio may outlive it: the CLI's exit is what counts.)
 */
export async function runCli (args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<{ code: number | null, out: string, err: string }> {
  const child = spawn(process.execPath, [join(root, 'bin', 'pagegift.js'), ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout?.on('data', (d) => { out += String(d) })
  child.stderr?.on('data', (d) => { err += String(d) })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  try {
    return { code: await withTimeout(exited, timeoutMs, `pagegift ${args.join(' ')}`), out, err }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

/**
 * A temporary directory any uid can read, holding a copy of the built package as
 * node_modules/pagegift (package.json, dist/ and the addon): a child run as another uid cannot read
 * the checkout when it sits in a 0700 directory, nor this checkout's node_modules (tsx).
 */
export function readablePackage (): string {
  const addon = ['build/Release/pagegift.node', 'build/Debug/pagegift.node'].find((f) => existsSync(join(root, f)))
  if (!existsSync(join(root, 'dist', 'index.js')) || addon === undefined) {
    throw new Error('A child of another uid runs the built package: run `npm run build` and `npm run install` first')
  }
  const dir = mkdtempSync(join(tmpdir(), 'pagegift-uid-'))
  const pkg = join(dir, 'node_modules', 'pagegift')
  for (const f of ['package.json', 'dist', addon]) cpSync(join(root, f), join(pkg, f), { recursive: true })
  for (const entry of [dir, ...readdirSync(dir, { recursive: true }).map((f) => join(dir, String(f)))]) {
    chmodSync(entry, entry.endsWith('.js') || entry.endsWith('.json') || entry.endsWith('.map') || entry.endsWith('.ts') ? 0o644 : 0o755)
  }
  return dir
}

/** Bundles a TS fixture to one ESM file in `dir` that imports the built package as `pagegift`. */
async function bundleFixture (name: string, dir: string): Promise<string> {
  const { build } = await import('esbuild')
  const out = join(dir, name.replace(/\.ts$/, '.mjs'))
  await build({
    entryPoints: [join(fixtures, name)], outfile: out, bundle: true, format: 'esm', platform: 'node', logLevel: 'error',
    plugins: [{
      name: 'built-package',
      setup (b) {
        b.onResolve({ filter: /\/src\/index\.ts$/ }, () => ({ path: 'pagegift', external: true }))
        b.onResolve({ filter: /\/src\// }, (a) => ({ errors: [{ text: `${a.path}: a child of another uid may import only the public package` }] }))
      },
    }],
  })
  chmodSync(out, 0o644)
  return out
}

export interface Peer { ch: Channel, child: ChildProcess, exited: Promise<number | null> }

/** Spawns test/fixtures/<name> through tsx with one end of a channel as its fd 3. */
export function spawnPeer (name: string, env: Record<string, string> = {}): Peer {
  return startPeer([process.execPath, '--import', 'tsx', join(fixtures, name)], env, {})
}

/**
 * Spawns test/fixtures/<name> as another user: the fixture is bundled against a readable copy of
 * the built package (removed when the child exits), and the child is killed after `timeoutMs`.
 */
export async function spawnPeerAs (name: string, ids: { uid: number, gid: number }, timeoutMs = 120_000): Promise<Peer> {
  const dir = readablePackage()
  const peer = startPeer([process.execPath, await bundleFixture(name, dir)], {}, { ...ids, cwd: dir, timeout: timeoutMs, killSignal: 'SIGKILL' })
  peer.exited.finally(() => rmSync(dir, { recursive: true, force: true })).catch(() => {})
  return peer
}

function startPeer (argv: string[], env: Record<string, string>, opts: SpawnOptions): Peer {
  const [mine, theirs] = channelPair()
  const child = spawn(argv[0], argv.slice(1), { ...opts, stdio: ['ignore', 'inherit', 'inherit', theirs.fd], env: { ...process.env, ...env } })
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
