/** The bench's service processes (examples/http-cache-app.ts), shared by bench/http.ts and bench/http-throughput.ts. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * The app compiled to JavaScript, as a service runs in production, for every method alike. Loaded
 * through tsx, each new process spent a whole core for about a second compiling TypeScript as it
 * started: on this 2-core machine, that start-up, not the reload itself, was most of what a reload
 * window measured. Built once per bench run, into a directory of its own under node_modules/.cache
 * (its imports resolve from there; runs side by side do not share it); `dir` is for the caller to remove.
 */
export function compileApp (source: string): { entry: string, dir: string } {
  const cache = join(root, 'node_modules', '.cache')
  mkdirSync(cache, { recursive: true })
  const out = mkdtempSync(join(cache, 'pagegift-bench-http-'))
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const args = ['--outDir', out, '--rootDir', root, '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022',
    '--rewriteRelativeImportExtensions', '--noCheck', '--skipLibCheck', '--types', 'node', source]
  const r = spawnSync(process.execPath, [tsc, ...args], { cwd: root, encoding: 'utf8', timeout: 300_000 })
  if (r.status !== 0) throw new Error(`bench http: compiling ${source} failed: ${r.stdout}${r.stderr}${r.error?.message ?? ''}`)
  // ES modules (a package scope ends at node_modules), and the addon where src/native.ts looks for it.
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n')
  for (const d of ['build', 'prebuilds']) if (existsSync(join(root, d))) symlinkSync(join(root, d), join(out, d))
  return { entry: join(out, relative(root, source).replace(/\.ts$/, '.js')), dir: out }
}

/** A service process; its stdout is JSON lines. */
export class Proc {
  readonly events: Record<string, unknown>[] = []
  readonly child: ChildProcess
  constructor (cmd: string, args: string[], env: Record<string, string>) {
    this.child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'], detached: true })
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (l) => { try { this.events.push(JSON.parse(l) as Record<string, unknown>) } catch {} })
  }

  async wait (event: string, count = 1, ms = 120_000): Promise<void> {
    const until = Date.now() + ms
    while (this.events.filter((e) => e.event === event).length < count) {
      if (Date.now() > until) throw new Error(`bench http: no '${event}' within ${ms} ms`)
      await sleep(20)
    }
  }
}
