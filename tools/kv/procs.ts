/** Child processes for the bench and the demo: start, wait for a line, stop; and reading a process's RSS. */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const KV_BIN = fileURLToPath(new URL('../../bin/pagegift-kv.js', import.meta.url))

export interface Proc {
  proc: ChildProcess
  output: () => string
  /** Resolves with the first match of `re` in the output after offset `from`. */
  waitFor: (re: RegExp, timeoutMs?: number, from?: number) => Promise<RegExpMatchArray>
  exited: Promise<number | null>
  stop: (signal?: NodeJS.Signals) => Promise<void>
}

export function startProcess (cmd: string, args: string[], echo?: (line: string) => void): Proc {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const onData = (d: Buffer): void => {
    out += d.toString()
    if (echo !== undefined) for (const l of d.toString().split('\n')) if (l.trim() !== '') echo(l)
  }
  proc.stdout?.on('data', onData)
  proc.stderr?.on('data', onData)
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  const waitFor = async (re: RegExp, timeoutMs = 30_000, from = 0): Promise<RegExpMatchArray> => {
    const deadline = Date.now() + timeoutMs
    let done = false
    void exited.then(() => { done = true })
    for (;;) {
      const m = out.slice(from).match(re)
      if (m !== null) return m
      if (done || Date.now() > deadline) throw new Error(`${cmd}: no ${String(re)} in output:\n${out.slice(-2000)}`)
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
    await exited
  }
  return { proc, output: () => out, waitFor, exited, stop }
}

/** Starts pagegift-kv with `args`; resolves once it serves, with its port. */
export async function startKv (args: string[], echo?: (line: string) => void): Promise<Proc & { port: number }> {
  const p = startProcess(process.execPath, [KV_BIN, ...args], echo)
  const m = await p.waitFor(/serving on 127\.0\.0\.1:(\d+)/, 60_000)
  return { ...p, port: Number(m[1]) }
}

/** Resident set size of a process, bytes (anonymous + file + shared memory pages). */
export function rssOf (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? 0 : Number(m[1]) * 1024
}

/** A free TCP port on 127.0.0.1. */
export async function freePort (): Promise<number> {
  const net = await import('node:net')
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise((resolve) => s.close(resolve))
  return port
}
