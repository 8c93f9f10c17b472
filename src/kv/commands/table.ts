/**
 * The command table and dispatch. A command name is looked up by a hash of its lowercased bytes,
 * then compared byte by byte, so dispatch allocates no string.
 */
import { hashKey } from '../keyindex.ts'
import { trackCommands } from './stats.ts'
import { NOAUTH, WRONG_ARGS, type Ctx } from './context.ts'
import { databaseCommands } from './databases.ts'
import { lcsCommands } from './lcs.ts'
import { objectCommands } from './object.ts'
import { moreStringCommands } from './strings-more.ts'
import { expireCommands } from './expire.ts'
import { keyCommands } from './keys.ts'
import { serverCommands } from './server.ts'
import { stringCommands } from './strings.ts'
import { multiCommands } from './multi.ts'
import { pubsubCommands } from './pubsub.ts'
import { blockingCommands } from './blocking.ts'
import { mpopCommands } from './mpop.ts'
import { helloCommands } from './hello.ts'
import { hashCommands } from './hash.ts'
import { listCommands } from './list.ts'
import { sortCommands } from './sort.ts'
import { setCommands } from './set.ts'
import { zsetCoreCommands } from './zset.ts'
import { zstoreCommands } from './zstore.ts'
import { zrangeCommands } from './zrange.ts'
import { dumpCommands } from './dump.ts'
import type { Command } from './types.ts'

const byHash = new Map<number, Command[]>()
const lower = Buffer.alloc(64)

function command (c: Ctx): void {
  if (c.argc === 1) {
    c.out.arrayHeader(all.length)
    for (const cmd of all) describe(c, cmd)
  } else if (c.is(1, 'count')) {
    c.out.int(all.length)
  } else if (c.is(1, 'info') && c.argc === 2) {
    c.out.arrayHeader(all.length)
    for (const cmd of all) describe(c, cmd)
  } else if (c.is(1, 'info')) {
    c.out.arrayHeader(c.argc - 2)
    for (let i = 2; i < c.argc; i++) {
      const cmd = all.find((x) => x.name === c.str(i).toLowerCase())
      if (cmd === undefined) c.out.nilArray()
      else describe(c, cmd)
    }
  } else if (c.is(1, 'docs')) {
    c.out.arrayHeader(0)
  } else if (c.is(1, 'list') && c.argc === 2) {
    c.out.arrayHeader(all.length)
    for (const cmd of all) c.out.bulkString(cmd.name)
  } else if (c.is(1, 'help') && c.argc === 2) {
    const lines = ['COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:', '(no subcommand)', '    Return details about all Redis commands.',
      'COUNT', '    Return the total number of commands in this Redis server.', 'LIST', '    Return a list of all commands in this Redis server.',
      'INFO [<command-name> ...]', '    Return details about multiple Redis commands.', 'DOCS [<command-name> ...]', '    Return documentation details about multiple Redis commands.',
      'HELP', '    Print this help.']
    c.out.arrayHeader(lines.length)
    for (const l of lines) c.out.simple(l)
  } else {
    c.out.error(`ERR unknown subcommand '${c.str(1)}'. Try COMMAND HELP.`)
  }
}

/** One command as Redis 7 describes it: name, arity, flags, key positions, then ACL categories, tips, key specs and subcommands (none kept here). */
function describe (c: Ctx, cmd: Command): void {
  c.out.arrayHeader(10)
  c.out.bulkString(cmd.name)
  c.out.int(cmd.arity)
  c.out.arrayHeader(cmd.flags.length)
  for (const f of cmd.flags) c.out.simple(f)
  for (const k of cmd.keys) c.out.int(k)
  for (let i = 0; i < 4; i++) c.out.arrayHeader(0)
}

const all: Command[] = [
  ...stringCommands, ...moreStringCommands, ...lcsCommands, ...keyCommands, ...databaseCommands, ...expireCommands,
  ...objectCommands, ...serverCommands,
  ...sortCommands,
  ...multiCommands, ...pubsubCommands, ...blockingCommands, ...mpopCommands, ...helloCommands,
  ...hashCommands, ...listCommands, ...setCommands, ...zsetCoreCommands, ...zstoreCommands, ...zrangeCommands,
  ...dumpCommands,
  { name: 'command', arity: -1, flags: ['random'], keys: [0, 0, 0], run: command }
]
trackCommands(all)
for (const cmd of all) {
  const name = Buffer.from(cmd.name)
  const h = hashKey(name, 0, name.length)
  byHash.set(h, [...(byHash.get(h) ?? []), cmd])
}

/** INFO commandstats: every command run or refused at least once. Time per call is not measured. */
export function commandStats (): Record<string, string> {
  const out: Record<string, string> = {}
  for (const cmd of all) {
    if ((cmd.calls ?? 0) + (cmd.rejected ?? 0) === 0) continue
    out[`cmdstat_${cmd.name}`] = `calls=${cmd.calls ?? 0},rejected_calls=${cmd.rejected ?? 0},failed_calls=0`
  }
  return out
}

/** Finds the command named by argument 0, or undefined. */
export function lookup (c: Ctx): Command | undefined {
  const s = c.s(0)
  const len = c.e(0) - s
  if (len > lower.length || len === 0) return undefined
  for (let i = 0; i < len; i++) {
    const b = c.buf[s + i]
    lower[i] = b >= 65 && b <= 90 ? b | 0x20 : b
  }
  const found = byHash.get(hashKey(lower, 0, len))
  if (found === undefined) return undefined
  for (const cmd of found) {
    if (cmd.name.length !== len) continue
    let same = true
    for (let i = 0; i < len && same; i++) same = cmd.name.charCodeAt(i) === lower[i]
    if (same) return cmd
  }
  return undefined
}

/** Runs the parsed command in `c`, replying with Redis's errors for unknown names and bad arity. */
export function dispatch (c: Ctx): void {
  const cmd = lookup(c)
  if (cmd === undefined) {
    let args = ''
    for (let i = 1; i < c.argc && args.length < 128; i++) args += `'${c.str(i)}' `
    c.out.error(`ERR unknown command '${c.str(0)}', with args beginning with: ${args}`)
    return
  }
  if ((cmd.arity > 0 && c.argc !== cmd.arity) || (cmd.arity < 0 && c.argc < -cmd.arity)) {
    cmd.rejected = (cmd.rejected ?? 0) + 1
    c.out.error(WRONG_ARGS(cmd.name))
    return
  }
  // After the name and arity checks, as in Redis: an unknown command says so even before AUTH.
  if (!c.client.authenticated && cmd.noAuth !== true && c.server.requirePass) {
    cmd.rejected = (cmd.rejected ?? 0) + 1
    c.out.error(NOAUTH)
    return
  }
  cmd.calls = (cmd.calls ?? 0) + 1
  cmd.run(c)
}
