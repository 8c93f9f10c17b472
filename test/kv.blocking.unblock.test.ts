/**
 * CLIENT UNBLOCK against a real pagegift-kv process: a blocked pop ends as its timeout would, or with
 * Redis's UNBLOCKED error, and the client goes on working; the errors are Redis's.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { KvClient } from '../src/kv/client.ts'
import { replyText as str } from './fixtures/kv-proc.ts'
import { childKv } from './fixtures/kv-local.ts'

const kv = childKv()

async function blockedCount (want: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!String(await kv.c.call('INFO', 'clients')).includes(`blocked_clients:${want}\r`)) {
    assert.ok(Date.now() < deadline, `blocked_clients never reached ${want}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('CLIENT UNBLOCK ends BLPOP, BLMPOP and BLMOVE waits as a timeout (default, TIMEOUT) or with ERROR; 0 for a client not blocked', async () => {
  const rd = await KvClient.connect(kv.port)
  try {
    const id = Number(await rd.call('CLIENT', 'ID'))
    const cases: [string[], string | undefined, unknown][] = [
      [['BLPOP', 'l', '0'], undefined, null],
      [['BLMPOP', '0', '1', 'l', 'RIGHT'], 'TIMEOUT', null],
      [['BLMOVE', 'l', 'm', 'LEFT', 'LEFT', '0'], 'timeout', null],
      [['BLPOP', 'l', '0'], 'ERROR', 'ERR:UNBLOCKED client unblocked via CLIENT UNBLOCK']
    ]
    for (const [cmd, reason, reply] of cases) {
      rd.send(...cmd)
      await blockedCount(1)
      assert.equal(await kv.c.call('CLIENT', 'UNBLOCK', id, ...(reason === undefined ? [] : [reason])), 1)
      assert.deepEqual(str(await rd.next(5000)), reply, cmd.join(' '))
      await blockedCount(0)
    }
    assert.deepEqual((await kv.c.pipeline([['CLIENT', 'UNBLOCK', 'asd'], ['CLIENT', 'UNBLOCK', id, 'LATER'], ['CLIENT', 'UNBLOCK', id], ['CLIENT', 'UNBLOCK', '999999']])).map(str),
      ['ERR:ERR value is not an integer or out of range', 'ERR:ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR', 0, 0])
    // The unblocked client and the list still work: the next wait is served by a push.
    rd.send('BLPOP', 'l', '0')
    await blockedCount(1)
    await kv.c.call('LPUSH', 'l', 'foo')
    assert.deepEqual(str(await rd.next(5000)), ['l', 'foo'])
  } finally {
    await rd.close()
  }
})
