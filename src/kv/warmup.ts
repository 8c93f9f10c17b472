/**
 * A successor warms up before it asks for the handoff: it runs a few thousand commands through the
 * parser, the command table and a throw-away store, so that the code it runs during the pause (and
 * just after) is compiled, and the start-up garbage is collected before the clock starts.
 */
import { Ctx } from './commands/context.ts'
import { dispatch } from './commands/table.ts'
import { encode } from './client.ts'
import { Reply } from './reply.ts'
import { RespParser } from './resp.ts'
import { KvServer } from './server.ts'
import { Store } from './store.ts'

export async function warmUp (rounds = 3): Promise<void> {
  const store = new Store({ segmentSize: 1024 * 1024, initialSlots: 1024 })
  const server = new KvServer(store)
  const ctx = new Ctx(store, new Reply(), server)
  const client = { id: 0, name: '', closing: false, authenticated: true, db: 0 }
  const p = new RespParser()
  const cmds: string[][] = []
  for (let i = 0; i < 2000; i++) {
    cmds.push(['SET', `warm:${i}`, `value-${i}`], ['GET', `warm:${i}`], ['INCR', `n:${i % 7}`], ['EXISTS', `warm:${i}`])
    if (i % 3 === 0) cmds.push(['DEL', `warm:${i}`])
  }
  cmds.push(['INFO'], ['DBSIZE'], ['SCAN', '0'])
  const buf = encode(cmds)
  for (let r = 0; r < rounds; r++) {
    for (let pos = 0; pos < buf.length;) {
      pos = p.parse(buf, pos, buf.length)
      ctx.bind(p, client)
      dispatch(ctx)
    }
    ctx.out.take()
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
