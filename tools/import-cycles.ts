/**
 * Finds import cycles among the TypeScript files under a directory (default src/): follows every
 * relative `import ... from` and `export ... from` (type-only ones too, as a reader follows them) and
 * prints each cycle found. `node --import tsx tools/import-cycles.ts [dir]`; exit 1 if any.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

function files (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [])
}

/** Every cycle, as a list of files, found by a depth-first walk of the static import graph. */
export function importCycles (dir: string): string[][] {
  const graph = new Map<string, string[]>()
  for (const f of files(resolve(dir))) {
    const deps = [...readFileSync(f, 'utf8').matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/gm)].map((m) => resolve(dirname(f), m[1]))
    graph.set(f, deps)
  }
  const cycles: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (f: string): void => {
    state.set(f, 'open')
    stack.push(f)
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map((x) => relative(process.cwd(), x)))
      else if (state.get(d) === undefined && graph.has(d)) visit(d)
    }
    stack.pop()
    state.set(f, 'done')
  }
  for (const f of graph.keys()) if (state.get(f) === undefined) visit(f)
  return cycles
}

if (process.argv[1] === import.meta.filename) {
  const cycles = importCycles(process.argv[2] ?? 'src')
  for (const c of cycles) process.stdout.write(c.join(' -> ') + '\n')
  process.exit(cycles.length > 0 ? 1 : 0)
}
