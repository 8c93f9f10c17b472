/** The peers the kv benchmark compares with: Debian's redis-server and memcached, and redis-benchmark. */
import { execFileSync, spawnSync } from 'node:child_process'
import net from 'node:net'
import { startProcess, type Proc } from './procs.ts'

/** Installs the peers with apt-get if they are missing (the bench does this, never `npm install`). */
export function ensurePeers (): void {
  const missing = ['redis-server', 'redis-benchmark', 'memcached'].filter((b) => spawnSync('which', [b]).status !== 0)
  if (missing.length === 0) return
  process.stdout.write(`installing ${missing.join(', ')} with apt-get...\n`)
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' })
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'redis-server', 'redis-tools', 'memcached'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
}

export async function startRedis (port: number, dir: string): Promise<Proc> {
  const p = startProcess('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--dbfilename', 'dump.rdb', '--daemonize', 'no', '--protected-mode', 'no'])
  await p.waitFor(/Ready to accept connections/, 600_000)
  return p
}

export async function startMemcached (port: number, memFile: string, megabytes: number): Promise<Proc> {
  const asRoot = process.getuid?.() === 0 ? ['-u', 'root'] : []
  const p = startProcess('memcached', [...asRoot, '-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', String(megabytes), '-e', memFile, '-I', '2m'])
  const deadline = Date.now() + 600_000
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return p
    if (p.proc.exitCode !== null || Date.now() > deadline) throw new Error(`memcached did not start:\n${p.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

export interface BenchLine { test: string, rps: number, avgMs: number, p50Ms: number, p99Ms: number, maxMs: number }

/** Runs redis-benchmark with --csv and returns one line per test. */
export async function redisBenchmark (port: number, args: string[]): Promise<BenchLine[]> {
  const p = startProcess('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), ...args, '--csv'])
  const code = await p.exited
  if (code !== 0) throw new Error(`redis-benchmark exited ${code}:\n${p.output()}`)
  const lines: BenchLine[] = []
  for (const line of p.output().split('\n')) {
    const f = line.split(',').map((x) => x.replace(/"/g, ''))
    if (f.length < 8 || f[0] === 'test' || Number.isNaN(Number(f[1]))) continue
    lines.push({ test: f[0], rps: Number(f[1]), avgMs: Number(f[2]), p50Ms: Number(f[4]), p99Ms: Number(f[6]), maxMs: Number(f[7]) })
  }
  if (/error/i.test(p.output())) throw new Error(`redis-benchmark reported errors:\n${p.output().slice(-2000)}`)
  return lines
}
