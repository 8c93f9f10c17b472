/**
 * Runs commands on the server's databases outside any client, for RDB load and save: collections are
 * built and read through the same commands clients use (RPUSH, SADD, ZADD, HSET; LRANGE, SMEMBERS,
 * ZRANGE, HGETALL), so the RDB code never depends on how a type lays out its blocks. It has its own
 * parser, reply buffer and context: SAVE runs while the server's own are in use.
 */
import { encode, parseReply, RespError, type Arg, type RespValue } from '../client.ts'
import { Ctx, type ClientInfo, type ServerView } from '../commands/context.ts'
import { Reply } from '../reply.ts'
import { RespParser } from '../resp.ts'
import { hubOf } from '../session.ts'

export class CommandRunner {
  private readonly parser = new RespParser()
  private readonly ctx: Ctx
  private readonly client: ClientInfo = { id: 0, name: 'rdb', closing: false, authenticated: true, db: 0 }

  constructor (server: ServerView) {
    this.ctx = new Ctx(server.dbs.db(0), new Reply(), server)
  }

  /** Runs one command in database `db`; an error reply is returned as a RespError. */
  run (db: number, args: Arg[]): RespValue {
    const req = encode([args])
    if (this.parser.parse(req, 0, req.length) !== req.length) throw new Error(`rdb: could not frame ${String(args[0])}`)
    this.client.db = db
    this.ctx.bind(this.parser, this.client)
    // The table's dispatch through the server's hub: importing the table here would make a cycle (DUMP uses this runner).
    hubOf(this.ctx).dispatch(this.ctx)
    const out = this.ctx.out.take()
    const r = parseReply(out, 0)
    if (typeof r === 'symbol') throw new Error(`rdb: ${String(args[0])} gave an incomplete reply`)
    return r[0]
  }
}

export { RespError }
