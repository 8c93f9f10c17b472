/**
 * CLIENT REPLY ON|OFF|SKIP, with Redis's semantics: OFF drops every reply until ON (which answers
 * OK), SKIP drops the next command's reply only (and is ignored while OFF). A client's mode is a
 * few bits of `Session.replyMode`, 0 while it gets every reply, so a command pays one check.
 *
 * A command's reply is dropped when, once it has run, replies are off or skipped: so a CLIENT REPLY
 * queued in a MULTI takes effect for the commands after the EXEC, whose reply is sent or dropped
 * whole, and it answers OK inside the EXEC array (Redis 7.0 leaves a hole there, which breaks the
 * array). Pub/sub messages and (un)subscribe confirmations are always sent, as in Redis; so is the
 * answer to a command that blocked before it was skipped (Redis drops it).
 */
import type { Reply } from './reply.ts'
import { sessionOf, type Session } from './session.ts'
import { SYNTAX, type Ctx } from './commands/context.ts'

/** Replies are off (CLIENT REPLY OFF). */
export const REPLY_OFF = 1
/** CLIENT REPLY SKIP ran: the next command's reply is dropped. */
const SKIP_NEXT = 2
/** This command's reply is dropped. */
const SKIPPING = 4
export const REPLY_MODES = REPLY_OFF | SKIP_NEXT | SKIPPING

/** CLIENT REPLY <mode>: only ON has a reply. */
export function clientReply (c: Ctx): void {
  const s = sessionOf(c)
  if (c.argc !== 3) c.out.error("ERR wrong number of arguments for 'client|reply' command")
  else if (c.is(2, 'on')) { s.replyMode = 0; c.out.ok() }
  else if (c.is(2, 'off')) { s.replyMode |= REPLY_OFF; if (s.inExec) c.out.ok() }
  else if (c.is(2, 'skip')) { if ((s.replyMode & REPLY_OFF) === 0) s.replyMode |= SKIP_NEXT; if (s.inExec) c.out.ok() }
  else c.out.error(SYNTAX)
}

/** True while this client's replies are dropped (its current command's included). */
export function silenced (s: Session): boolean {
  return (s.replyMode & (REPLY_OFF | SKIPPING)) !== 0
}

/** After each command of a client whose mode is not 0: drops its reply (written from `mark`) if due, arms a SKIP. */
export function afterCommand (s: Session, out: Reply, mark: number): void {
  if (silenced(s)) out.rewind(mark)
  s.replyMode = (s.replyMode & REPLY_OFF) | ((s.replyMode & SKIP_NEXT) !== 0 ? SKIPPING : 0)
}
