/** Command-line options of pagegift-kv. */
import { readFileSync } from 'node:fs'
import { parseBytes } from './units.ts'

export interface KvOptions {
  port: number
  /** Addresses to listen on, as Redis's `bind`: a leading '-' means "skip it if it is not available". */
  bind: string[]
  handoff: string | null
  maxmemory: number
  segmentSize: number
  /** An RDB file: SAVE writes here; a first generation loads it at start if it exists. */
  snapshot: string | null
  /** An RDB file a first generation loads at start (it must exist). */
  load: string | null
  /** An RDB file SAVE and shutdown write. */
  rdbOut: string | null
  /** Redis's requirepass: clients must AUTH first. null: no password. */
  requirepass: string | null
  /** How many databases (Redis's `databases`). */
  databases: number
}

/** Where the password may come from besides the command line, which other users can read in `ps`. */
export const PASSWORD_ENV = 'PAGEGIFT_KV_REQUIREPASS'

export const USAGE = `usage: pagegift-kv [--port 6380] [--bind "127.0.0.1 ..."] [--handoff <socket>] [--maxmemory 4gb]
                   [--segment-size 64mb] [--databases 16] [--snapshot <file>] [--load <dump.rdb>] [--rdb-out <file>]
                   [--requirepass <password> | --requirepass-file <file>]
  --host is an alias of --bind. The password may also come from $${PASSWORD_ENV}.
  Starting it again with the same --handoff socket while one runs performs a live upgrade; a successor
  started without a password keeps its predecessor's.`

/** Parses argv (and the password's environment variable); returns an error message for bad input. */
export function parseOptions (argv: string[], env: NodeJS.ProcessEnv = process.env): KvOptions | string {
  const o: KvOptions = { port: 6380, bind: ['127.0.0.1'], handoff: null, maxmemory: 0, segmentSize: 64 * 1024 * 1024, snapshot: null, load: null, rdbOut: null, requirepass: null, databases: 16 }
  let passwordFile: string | null = null
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const v = argv[i + 1]
    if (a === '-h' || a === '--help') return USAGE
    if (v === undefined) return `pagegift-kv: ${a} needs a value\n${USAGE}`
    i++
    if (a === '--port') {
      o.port = Number(v)
      if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) return `pagegift-kv: bad --port '${v}'`
    } else if (a === '--host' || a === '--bind') {
      o.bind = v.split(/\s+/).filter((x) => x !== '')
      if (o.bind.length === 0) return `pagegift-kv: ${a} needs at least one address`
    } else if (a === '--handoff') o.handoff = v
    else if (a === '--snapshot') o.snapshot = v
    else if (a === '--load') o.load = v
    else if (a === '--rdb-out') o.rdbOut = v
    else if (a === '--requirepass') o.requirepass = v
    else if (a === '--requirepass-file') passwordFile = v
    else if (a === '--databases') {
      o.databases = Number(v)
      if (!Number.isInteger(o.databases) || o.databases < 1 || o.databases > 1024) return `pagegift-kv: bad --databases '${v}' (1 to 1024)`
    }
    else if (a === '--maxmemory' || a === '--segment-size') {
      const n = parseBytes(v)
      if (n === null) return `pagegift-kv: bad ${a} '${v}'`
      if (a === '--maxmemory') o.maxmemory = n
      else o.segmentSize = n
    } else return `pagegift-kv: unknown option '${a}'\n${USAGE}`
  }
  if (o.requirepass !== null && passwordFile !== null) return 'pagegift-kv: give --requirepass or --requirepass-file, not both'
  if (passwordFile !== null) {
    const p = readPasswordFile(passwordFile)
    if (p.error !== undefined) return p.error
    o.requirepass = p.password
  } else if (o.requirepass === null && env[PASSWORD_ENV] !== undefined) {
    o.requirepass = env[PASSWORD_ENV] as string
  }
  // As in Redis, an empty requirepass means no password.
  if (o.requirepass === '') o.requirepass = null
  return o
}

/** The file's first line is the password (a trailing newline is not part of it). */
function readPasswordFile (path: string): { password: string, error?: undefined } | { error: string } {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    return { error: `pagegift-kv: cannot read --requirepass-file ${path}: ${(err as Error).message}` }
  }
  const password = text.replace(/\r?\n$/, '')
  if (password === '' || password.includes('\n')) return { error: `pagegift-kv: --requirepass-file ${path} must hold the password on one line` }
  return { password }
}

/** Redis's wildcards in `bind`: `*` is every IPv4 address, `::*` every IPv6 one. */
export function listenAddress (bind: string): { host: string, optional: boolean } {
  const optional = bind.startsWith('-')
  const host = optional ? bind.slice(1) : bind
  return { host: host === '*' ? '0.0.0.0' : host === '::*' ? '::' : host, optional }
}
