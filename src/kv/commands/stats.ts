/**
 * The counters kept across the command table: INFO's rdb_changes_since_last_save and CONFIG RESETSTAT.
 * They are read from the commands' own call counts, so that dispatch does no more work for them.
 * A module of its own, so that CONFIG and SAVE (commands/server.ts) need not import the table.
 */
import type { Command } from './types.ts'

let commands: readonly Command[] = []
let writesAtSave = 0

/** The table's commands (called once, when the table is built). */
export function trackCommands (all: readonly Command[]): void {
  commands = all
}

function writeCalls (): number {
  let n = 0
  for (const cmd of commands) if (cmd.flags.includes('write')) n += cmd.calls ?? 0
  return n
}

/**
 * INFO's rdb_changes_since_last_save: the write commands run since the last SAVE. Redis counts
 * changed elements instead; the two agree for one-element writes and differ for multi-element ones
 * or writes that changed nothing.
 */
export function changesSinceSave (): number {
  return writeCalls() - writesAtSave
}

/** A SAVE succeeded: the changes count starts again from 0. */
export function markSaved (): void {
  writesAtSave = writeCalls()
}

/** CONFIG RESETSTAT: commandstats start again from 0 (the changes since the last SAVE go on counting, as in Redis). */
export function resetStats (): void {
  writesAtSave -= writeCalls()
  for (const cmd of commands) { cmd.calls = 0; cmd.rejected = 0 }
}
