/** Command-line options of pagegift-kv. */
import { parseBytes } from './units.ts'

export interface KvOptions {
  port: number
  host: string
  handoff: string | null
  maxmemory: number
  segmentSize: number
  /** SAVE writes here; a first generation loads it at start if it exists. */
  snapshot: string | null
}

export const USAGE = `usage: pagegift-kv [--port 6380] [--host 127.0.0.1] [--handoff <socket>] [--maxmemory 4gb] [--segment-size 64mb]
                   [--snapshot <file>]
  Starting it again with the same --handoff socket while one runs performs a live upgrade.`

/** Parses argv; returns an error message for bad input. */
export function parseOptions (argv: string[]): KvOptions | string {
  const o: KvOptions = { port: 6380, host: '127.0.0.1', handoff: null, maxmemory: 0, segmentSize: 64 * 1024 * 1024, snapshot: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const v = argv[i + 1]
    if (a === '-h' || a === '--help') return USAGE
    if (v === undefined) return `pagegift-kv: ${a} needs a value\n${USAGE}`
    i++
    if (a === '--port') {
      o.port = Number(v)
      if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) return `pagegift-kv: bad --port '${v}'`
    } else if (a === '--host') o.host = v
    else if (a === '--handoff') o.handoff = v
    else if (a === '--snapshot') o.snapshot = v
    else if (a === '--maxmemory' || a === '--segment-size') {
      const n = parseBytes(v)
      if (n === null) return `pagegift-kv: bad ${a} '${v}'`
      if (a === '--maxmemory') o.maxmemory = n
      else o.segmentSize = n
    } else return `pagegift-kv: unknown option '${a}'\n${USAGE}`
  }
  return o
}
