/**
 * The `pagegift` command. Each subcommand lives in its own module under src/cli/ and exports
 * `run(argv: string[]): Promise<number>`; this file only dispatches, so subcommands load lazily.
 */
import { readFileSync } from 'node:fs'

const commands: Record<string, { summary: string, load: () => Promise<{ run(argv: string[]): Promise<number> }> }> = {
  doctor: { summary: 'what this host supports, and which path a same-user gift takes', load: () => import('./doctor.ts') },
  upgrade: { summary: 'upgrade <socket> -- <command ...>: start the next version and hand over', load: () => import('./upgrade.ts') },
  status: { summary: 'status <socket> [--json]: generation, pid, regions, handles, history', load: () => import('./status.ts') },
  qemu: { summary: 'qemu start|prepare|upgrade|status|stop: live-update a QEMU VM without copying its RAM', load: () => import('./qemu.ts') },
}

function usage (): string {
  const lines = ['usage: pagegift <command> [options]', '       pagegift --version', '', 'commands:']
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(9)} ${c.summary}`)
  return lines.join('\n')
}

export async function main (argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage() + '\n')
    return name === undefined ? 1 : 0
  }
  if (name === '--version' || name === '-v') {
    // package.json is two levels up from both src/cli/ and dist/cli/.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    process.stdout.write(`${pkg.version}\n`)
    return 0
  }
  const command = commands[name]
  if (command === undefined) {
    process.stderr.write(`pagegift: unknown command '${name}'\n\n${usage()}\n`)
    return 2
  }
  try {
    return await (await command.load()).run(rest)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    process.stderr.write(`pagegift ${name}: ${e.code !== undefined ? `[${e.code}] ` : ''}${e.message}\n`)
    return 1
  }
}
