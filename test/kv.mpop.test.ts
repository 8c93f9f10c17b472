import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { KvClient } from '../src/kv/client.ts'
import { replyText as str } from './fixtures/kv-proc.ts'
import { startPair, type Pair } from './fixtures/kv-types.ts'

let p: Pair
before(async () => { p = await startPair() })
after(async () => { await p.close() })

test('LMPOP and ZMPOP answer as redis-server does: replies, counts, errors', async () => {
  await p.same([['FLUSHALL']])
  await p.same([
    ['RPUSH', 'l', 'a', 'b', 'c', 'd', 'e'], ['ZADD', 'z', '1', 'a', '2', 'b', '3', 'c'], ['SET', 's', 'x'],
    ['LMPOP', '2', 'none', 'l', 'LEFT'], ['LMPOP', '1', 'l', 'RIGHT', 'COUNT', '2'], ['LMPOP', '1', 'l', 'left', 'count', '10'], ['EXISTS', 'l'],
    ['LMPOP', '1', 'l', 'LEFT'], ['LMPOP', '2', 'none', 's', 'LEFT'], ['LMPOP', '0', 'l', 'LEFT'], ['LMPOP', 'x', 'l', 'LEFT'], ['LMPOP', '2', 'l', 'LEFT'],
    ['LMPOP', '1', 'l', 'UP'], ['LMPOP', '1', 'l', 'LEFT', 'COUNT', '0'], ['LMPOP', '1', 'l', 'LEFT', 'COUNT', '1', 'COUNT', '1'], ['LMPOP', '1', 'l', 'LEFT', 'COUNT'],
    ['ZMPOP', '1', 'z', 'MIN'], ['ZMPOP', '2', 'none', 'z', 'MAX', 'COUNT', '5'], ['EXISTS', 'z'], ['ZMPOP', '1', 'z', 'MIN'], ['ZMPOP', '1', 's', 'MIN'],
    ['ZMPOP', '1', 'z', 'LEFT'], ['ZMPOP', '-1', 'z', 'MIN'], ['LMPOP', '1', 'l'], ['ZMPOP', '1', 'z', 'MIN', 'COUNT', '-1'],
    ['BLMPOP', '0', '1', 'l', 'UP'], ['BLMPOP', 'x', '1', 'l', 'LEFT'], ['BLMPOP', '-1', '1', 'l', 'LEFT'], ['BZMPOP', '0', '0', 'z', 'MIN'],
    ['RPUSH', 'l', 'a', 'b'], ['BLMPOP', '0', '2', 'none', 'l', 'RIGHT', 'COUNT', '5'], ['ZADD', 'z', '5', 'm'], ['BZMPOP', '0.1', '1', 'z', 'MAX'],
    ['BLMPOP', '0.01', '1', 'none', 'LEFT'], ['BZMPOP', '0.01', '1', 'none', 'MIN'], ['MULTI'], ['BLMPOP', '0', '1', 'none', 'LEFT'], ['EXEC']
  ])
})

test('BLMPOP and BZMPOP block until a push, then pop up to COUNT from that key', async () => {
  const port = p.kvProc.port
  const [a, b, w] = await Promise.all([KvClient.connect(port), KvClient.connect(port), KvClient.connect(port)])
  try {
    await w.pipeline([['FLUSHALL']])
    const gotA = a.pipeline([['BLMPOP', '10', '2', 'l1', 'l2', 'RIGHT', 'COUNT', '2']])
    const gotB = b.pipeline([['BZMPOP', '10', '1', 'z', 'MIN', 'COUNT', '2']])
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.deepEqual((await w.pipeline([['RPUSH', 'l2', 'x', 'y', 'z'], ['ZADD', 'z', '1', 'one', '2', 'two', '3', 'three']])).map(str), [3, 3])
    assert.deepEqual((await gotA).map(str), [['l2', ['z', 'y']]])
    assert.deepEqual((await gotB).map(str), [['z', [['one', '1'], ['two', '2']]]])
    assert.deepEqual((await w.pipeline([['LRANGE', 'l2', '0', '-1'], ['ZCARD', 'z']])).map(str), [['x'], 1])
  } finally {
    await Promise.all([a.close(), b.close(), w.close()])
  }
})
