/**
 * `npm run bench [-- <suite> ...]`: runs the named suites (all by default). Each suite is a module
 * bench/<suite>.ts exporting `run(args: string[]): Promise<void>`; it prints its own table of medians
 * and writes JSON to bench/results/.
 */
const suites = ['transfer', 'handoff', 'handoff-floor', 'kv', 'qemu', 'startup', 'http']

const args = process.argv.slice(2)
const chosen = args.filter((a) => !a.startsWith('-'))
const flags = args.filter((a) => a.startsWith('-'))
for (const name of chosen) {
  if (!suites.includes(name)) {
    process.stderr.write(`bench: unknown suite '${name}' (have: ${suites.join(', ')})\n`)
    process.exit(2)
  }
}
for (const name of chosen.length > 0 ? chosen : suites) {
  process.stdout.write(`\n=== bench: ${name} ===\n`)
  const mod = await import(`./${name}.ts`) as { run(args: string[]): Promise<void> }
  await mod.run(flags)
}
