/** `join()`: the way into a service's line of generations, as its successor or as generation 1. */
import { makeEnv, type HandoffChannel } from './env.ts'
import { DEFAULT_TIMEOUT_MS, Generation } from './generation.ts'
import { readKey } from './key.ts'
import { sidePath } from './pathwatch.ts'
import { prime, rewarm } from './prime.ts'
import { LIMITS } from './protocol.ts'
import { inherit } from './successor.ts'
import type { JoinOptions } from './types.ts'

/** Codes of a connect() that finds no live predecessor: we are the first generation. */
const NOBODY = new Set(['ENOENT', 'ECONNREFUSED'])

/**
 * Joins the service at `socketPath`: inherits from the generation serving there (receiving its
 * regions, handles and metadata), or becomes generation 1 if nobody is serving.
 */
export async function join (socketPath: string, opts: JoinOptions = {}): Promise<Generation> {
  const o = checkOptions(socketPath, opts)
  const env = makeEnv(o.env)
  // Outside any pause: compile the handoff's code now (once per process), not in the middle of it.
  const primed = o.prime !== false
  if (primed) await prime()
  // Read before connecting: a key file that is not ours alone fails here, whoever serves.
  const key = readKey(socketPath)
  let ch: HandoffChannel
  try {
    ch = await env.connect(socketPath)
  } catch (err) {
    if (NOBODY.has((err as { code?: string }).code ?? '')) return new Generation(socketPath, env, o, null)
    throw err
  }
  const inheritance = await inherit(env, ch, { version: o.version ?? '', key, layouts: o.layouts ?? {}, side: sidePath(socketPath), warm: primed ? rewarm : undefined }, o.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  return new Generation(socketPath, env, o, inheritance)
}

function checkOptions (path: unknown, opts: unknown): JoinOptions {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('The "socketPath" argument must be a non-empty string')
  if (Buffer.byteLength(path) > 107) throw new RangeError(`The "socketPath" argument is longer than a Unix socket path may be (107 bytes): ${path}`)
  if (typeof opts !== 'object' || opts === null) throw new TypeError('The "opts" argument must be an object')
  const o = opts as JoinOptions
  if (o.version !== undefined && (typeof o.version !== 'string' || o.version.length > LIMITS.name)) throw new TypeError(`The "opts.version" argument must be a string of at most ${LIMITS.name} chars`)
  if (o.layouts !== undefined) checkLayoutOptions(o.layouts)
  if (o.prime !== undefined && typeof o.prime !== 'boolean') throw new TypeError('The "opts.prime" argument must be a boolean')
  for (const k of ['timeoutMs', 'helloTimeoutMs', 'pauseBudgetMs'] as const) {
    const v = o[k]
    if (v !== undefined && (typeof v !== 'number' || !(v > 0) || v > 2 ** 31 - 1)) throw new RangeError(`The "opts.${k}" argument must be a positive number of ms. Received ${String(v)}`)
  }
  return o
}

function checkLayoutOptions (layouts: unknown): void {
  if (typeof layouts !== 'object' || layouts === null) throw new TypeError('The "opts.layouts" argument must be an object')
  const version = (x: unknown): boolean => Number.isInteger(x) && (x as number) >= 0 && (x as number) < 2 ** 31
  for (const [name, spec] of Object.entries(layouts)) {
    const l = spec as { version?: unknown, accepts?: unknown }
    if (typeof l !== 'object' || l === null || !version(l.version)) throw new TypeError(`The "opts.layouts.${name}.version" argument must be a non-negative integer`)
    if (l.accepts !== undefined && (!Array.isArray(l.accepts) || !l.accepts.every(version))) throw new TypeError(`The "opts.layouts.${name}.accepts" argument must be an array of non-negative integers`)
  }
}
