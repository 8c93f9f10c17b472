/**
 * CLIENT REPLY ON|OFF|SKIP, with Redis's semantics: OFF drops every reply until ON (which answers
 * OK), SKIP drops the next command's reply only (and is ignored while OFF). A client's mode is a
 * few bits of `Session.replyMode`, 0 while it gets every reply, so a command pays one check.
 *
 * A command's reply is dropped when, once it has run, replies are off or skipped: so a CLIENT REPLY
 * queued in a MULTI takes effect for the commands after the EXEC, whose reply is sent or dropped
 * whole, and it answers OK inside the EXEC array (Redis 7.0 leaves a hole there, which breaks the
 * array). Pub/sub messages and (un)subscribe confirmations are always sent, as in Redis. A command
 * that blocks keeps the mode it ran under until it is answered, so a skipped BLPOP's answer is
 * dropped when it comes (in this generation or, the mode travelling with the client, the next).
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
  if (s.blocked === null) advance(s)
}

/** A blocked command's answer is ready: true if it is to be sent; the mode moves past that command. */
export function answerSent (s: Session): boolean {
  if (s.replyMode === 0) return true
  const send = !silenced(s)
  advance(s)
  return send
}

/** One command done: a SKIP armed by it applies to the next. */
function advance (s: Session): void {
  s.replyMode = (s.replyMode & REPLY_OFF) | ((s.replyMode & SKIP_NEXT) !== 0 ? SKIPPING : 0)
}
