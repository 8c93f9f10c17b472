import { test } from 'node:test'
import assert from 'node:assert/strict'
import { KvClient } from '../src/kv/client.ts'
import { replyText as str, withUpgradableKv } from './fixtures/kv-proc.ts'


test('live upgrade: blocked clients stay blocked, are served by pushes in the successor, and time out at their original deadline', async () => {
  await withUpgradableKv('kv-block-', [], async (kv) => {
    const [forever, timed, zset, mover, other] = await Promise.all(Array.from({ length: 5 }, async () => await KvClient.connect(kv.port)))
    await run(other, ['SELECT', 3])
    await run(zset, ['HELLO', 3])
    // A blocked client with a command pipelined behind it: that command waits and moves with it.
    forever.send('BLPOP', 'q', 0)
    forever.send('PING', 'after')
    const t0 = Date.now()
    timed.send('BRPOP', 'never', 4)
    zset.send('BZPOPMIN', 'z', 0)
    await run(mover, ['SELECT', 3])
    mover.send('BLMOVE', 'src', 'dst', 'LEFT', 'RIGHT', 0)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    await kv.upgrade()
    const upgraded = Date.now()
    assert.equal(forever.unread + timed.unread + zset.unread + mover.unread, 0, 'a blocked client was answered by the upgrade')
    const k = await KvClient.connect(kv.port)
    await run(k, ['RPUSH', 'q', 'job'], ['ZADD', 'z', '1.5', 'm'])
    assert.deepEqual([str(await forever.next()), str(await forever.next())], [['q', 'job'], 'after'])
    assert.deepEqual(str(await zset.next()), ['z', 'm', 1.5])
    // The mover waits in database 3: a push in database 0 does not serve it, one in database 3 does.
    await run(k, ['RPUSH', 'src', 'db0'])
    await run(other, ['RPUSH', 'src', 'v'])
    assert.deepEqual(str(await mover.next()), 'v')
    assert.deepEqual(await run(other, ['LRANGE', 'dst', 0, -1]), [['v']])
    // The timed client: null at t0 + 4 s, not 4 s after the upgrade.
    assert.equal(str(await timed.next(15_000)), null)
    const elapsed = Date.now() - t0
    assert.ok(elapsed >= 3950, `timed out after ${elapsed} ms`)
    assert.ok(elapsed < Math.max(4000, upgraded - t0) + 1500, `timed out after ${elapsed} ms: the deadline moved (upgrade done at ${upgraded - t0} ms)`)
    assert.deepEqual(await run(timed, ['PING']), ['PONG'])
    assert.match(String(await k.call('INFO', 'pagegift')), /generation:2\r\n/)
    await Promise.all([forever, timed, zset, mover, other, k].map(async (c) => await c.close()))
  })
})

async function run (k: KvClient, ...cmds: (string | number)[][]): Promise<unknown[]> {
  return (await k.pipeline(cmds)).map(str)
}
