/** Connection and server commands: PING, ECHO, QUIT, CLIENT, CONFIG, INFO. */
import { Glob } from '../glob.ts'
import { markSaved, resetStats } from './stats.ts'
import { clientUnblock } from './blocking.ts'
import { SYNTAX, type Ctx } from './context.ts'
import type { Command } from './types.ts'
import { clientReply } from '../client-reply.ts'

function ping (c: Ctx): void {
  if (c.argc === 1) c.out.simple('PONG')
  else if (c.argc === 2) c.out.bulk(c.buf, c.s(1), c.e(1))
  else c.out.error("ERR wrong number of arguments for 'ping' command")
}

function client (c: Ctx): void {
  if (c.is(1, 'setname') && c.argc === 3) {
    const name = c.str(2)
    if (/[\s]/.test(name)) { c.out.error('ERR Client names cannot contain spaces, newlines or special characters.'); return }
    c.client.name = name
    c.out.ok()
  } else if (c.is(1, 'unblock') && (c.argc === 3 || c.argc === 4)) {
    clientUnblock(c)
  } else if (c.is(1, 'getname') && c.argc === 2) {
    if (c.client.name === '') c.out.nil()
    else c.out.bulkString(c.client.name)
  } else if (c.is(1, 'id') && c.argc === 2) {
    c.out.int(c.client.id)
  } else if (c.is(1, 'reply')) {
    clientReply(c)
  } else if (c.is(1, 'setinfo')) {
    c.out.ok()
  } else {
    c.out.error(`ERR unknown subcommand '${c.str(1)}'. Try CLIENT HELP.`)
  }
}

/**
 * Redis parameters that CONFIG SET accepts and CONFIG GET reports, which change nothing here (or
 * which a type module reads, through `configValue`): encoding thresholds, lazy freeing, limits.
 * Tools and test harnesses set them and restore them, and must not fail on it.
 */
const TOLERATED: Record<string, string> = {
  'hash-max-listpack-entries': '128', 'hash-max-listpack-value': '64', 'hash-max-ziplist-entries': '128', 'hash-max-ziplist-value': '64',
  'list-max-listpack-size': '-2', 'list-max-ziplist-size': '-2', 'list-compress-depth': '0',
  'set-max-intset-entries': '512', 'set-max-listpack-entries': '128', 'set-max-listpack-value': '64',
  'zset-max-listpack-entries': '128', 'zset-max-listpack-value': '64', 'zset-max-ziplist-entries': '128', 'zset-max-ziplist-value': '64',
  'lazyfree-lazy-server-del': 'no', 'lazyfree-lazy-user-del': 'no', 'lazyfree-lazy-user-flush': 'no', 'lazyfree-lazy-expire': 'no',
  'lua-time-limit': '5000', 'busy-reply-threshold': '5000', 'proto-max-bulk-len': '536870912',
  'client-query-buffer-limit': '1073741824', 'rdb-key-save-delay': '0', 'min-replicas-to-write': '0', 'replica-serve-stale-data': 'yes',
  'replica-read-only': 'yes', save: '', appendonly: 'no', 'active-expire-effort': '1', 'latency-tracking': 'yes', 'slowlog-log-slower-than': '10000'
}
const tolerated = new WeakMap<object, Record<string, string>>()

/** A tolerated parameter's value on this server (CONFIG SET's, or Redis's default). */
export function configValue (server: object, name: string): string | undefined {
  return tolerated.get(server)?.[name] ?? TOLERATED[name]
}

function config (c: Ctx): void {
  if (c.is(1, 'get') && c.argc >= 3) {
    const cfg = { ...TOLERATED, ...tolerated.get(c.server), ...c.server.config }
    const pairs: string[] = []
    for (let i = 2; i < c.argc; i++) {
      // Redis matches CONFIG GET patterns without regard to case.
      const glob = Glob.compile(c.buf, c.s(i), c.e(i), true)
      for (const [k, v] of Object.entries(cfg)) {
        if (glob.matches(Buffer.from(k)) && !pairs.includes(k)) pairs.push(k, v)
      }
    }
    c.out.map(pairs.length / 2)
    for (const s of pairs) c.out.bulkString(s)
  } else if (c.is(1, 'set') && c.argc >= 4 && c.argc % 2 === 0) {
    for (let i = 2; i < c.argc; i += 2) {
      const name = c.str(i).toLowerCase()
      if (name in TOLERATED) {
        const mine = tolerated.get(c.server) ?? {}
        mine[name] = c.str(i + 1)
        // The 6.x ziplist names are aliases of the listpack ones (OBJECT ENCODING reads the latter).
        const alias = name.includes('ziplist') ? name.replace('ziplist', 'listpack') : name.replace('listpack', 'ziplist')
        if (alias in TOLERATED) mine[alias] = mine[name]
        tolerated.set(c.server, mine)
        continue
      }
      const err = c.server.configSet(name, c.str(i + 1))
      if (err !== null) { c.out.error(err); return }
    }
    c.out.ok()
  } else if (c.is(1, 'resetstat') && c.argc === 2) {
    resetStats()
    c.out.ok()
  } else {
    c.out.error(`ERR unknown subcommand or wrong number of arguments for '${c.str(1)}'. Try CONFIG HELP.`)
  }
}

/** INFO [section [section ...]] */
function info (c: Ctx): void {
  const names: string[] = []
  for (let i = 1; i < c.argc; i++) names.push(c.str(i).toLowerCase())
  c.out.bulkString(c.server.info(names.length === 0 ? 'default' : names.join(' ')))
}

function quit (c: Ctx): void {
  c.client.closing = true
  c.out.ok()
}

/** AUTH <password> | AUTH <username> <password>, with Redis's replies; only the `default` user exists. */
function auth (c: Ctx): void {
  if (c.argc > 3) { c.out.error(SYNTAX); return }
  if (c.argc === 2 && !c.server.requirePass) {
    c.out.error('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?')
    return
  }
  const user = c.argc === 3 ? c.str(1) : 'default'
  if (!c.server.authenticate(user, c.copy(c.argc - 1))) {
    // A failed AUTH leaves an authenticated client authenticated, as in Redis.
    c.out.error('WRONGPASS invalid username-password pair or user is disabled.')
    return
  }
  c.client.authenticated = true
  c.out.ok()
}

function save (c: Ctx): void {
  const err = c.server.save()
  if (err === null) { markSaved(); c.out.ok() } else c.out.error(err)
}

/**
 * SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: saves as Redis does (by default when there is somewhere to
 * save, here --rdb-out), then stops the server as SIGTERM would. A failed save keeps it running unless
 * FORCE. No reply on success: the connection closes. ABORT has no shutdown to abort (ours is at once).
 */
function shutdown (c: Ctx): void {
  const flags = new Set<string>()
  for (let i = 1; i < c.argc; i++) flags.add(c.str(i).toLowerCase())
  const known = ['nosave', 'save', 'now', 'force', 'abort']
  if ([...flags].some((f) => !known.includes(f)) || (flags.has('save') && flags.has('nosave')) || (flags.has('abort') && flags.size > 1)) {
    c.out.error(SYNTAX)
    return
  }
  if (flags.has('abort')) { c.out.error('ERR No shutdown in progress.'); return }
  const err = flags.has('nosave') ? null : flags.has('save') ? c.server.save() : c.server.saveOnShutdown()
  if (err !== null) {
    process.stderr.write(`pagegift-kv: SHUTDOWN: ${err}\n`)
    if (!flags.has('force')) { c.out.error('ERR Errors trying to SHUTDOWN. Check logs.'); return }
  }
  c.server.shutdown()
}

/** TIME: seconds and microseconds, from the wall clock. */
function time (c: Ctx): void {
  const us = BigInt(Date.now()) * 1000n + BigInt(Math.floor((performance.now() % 1) * 1000))
  c.out.arrayHeader(2)
  c.out.bulkString(String(us / 1000000n))
  c.out.bulkString(String(us % 1000000n))
}

const fast = ['fast']
export const serverCommands: Command[] = [
  { name: 'ping', arity: -1, flags: fast, keys: [0, 0, 0], run: ping },
  { name: 'time', arity: 1, flags: ['random', 'fast'], keys: [0, 0, 0], run: time },
  { name: 'echo', arity: 2, flags: fast, keys: [0, 0, 0], run: (c) => c.out.bulk(c.buf, c.s(1), c.e(1)) },
  { name: 'quit', arity: -1, flags: [...fast, 'no_auth'], keys: [0, 0, 0], run: quit, noAuth: true },
  { name: 'auth', arity: -2, flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'sentinel', 'allow_busy'], keys: [0, 0, 0], run: auth, noAuth: true },
  { name: 'client', arity: -2, flags: ['admin'], keys: [0, 0, 0], run: client },
  { name: 'config', arity: -2, flags: ['admin'], keys: [0, 0, 0], run: config },
  { name: 'info', arity: -1, flags: [], keys: [0, 0, 0], run: info },
  { name: 'save', arity: 1, flags: ['admin', 'noscript'], keys: [0, 0, 0], run: save },
  { name: 'shutdown', arity: -1, flags: ['admin', 'noscript', 'loading', 'stale', 'no_multi', 'allow_busy'], keys: [0, 0, 0], run: shutdown }
]
