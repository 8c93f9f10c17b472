import type { Ctx } from './context.ts'

/** One command: Redis-style arity (n exact, -n at least n), key positions for COMMAND, handler. */
export interface Command {
  name: string
  arity: number
  flags: string[]
  keys: [first: number, last: number, step: number]
  /** Runs before AUTH (Redis's no-auth flag). */
  noAuth?: boolean
  run (c: Ctx): void
  /** Times run, and times refused (arity, AUTH), for INFO commandstats. */
  calls?: number
  rejected?: number
}
