import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RespParser, INCOMPLETE, PROTOCOL_ERROR } from '../src/kv/resp.ts'
import { Reply } from '../src/kv/reply.ts'
import { encode, parseReply } from '../src/kv/client.ts'

function args (p: RespParser): string[] {
  const out: string[] = []
  for (let i = 0; i < p.argc; i++) out.push(p.buf.toString('latin1', p.start[i], p.end[i]))
  return out
}

test('parses pipelined multibulk commands in place', () => {
  const p = new RespParser()
  const b = encode([['SET', 'k', 'v'], ['GET', 'k']])
  let pos = p.parse(b, 0, b.length)
  assert.deepEqual(args(p), ['SET', 'k', 'v'])
  pos = p.parse(b, pos, b.length)
  assert.deepEqual(args(p), ['GET', 'k'])
  assert.equal(pos, b.length)
  assert.equal(p.parse(b, pos, b.length), INCOMPLETE)
})

test('every proper prefix of a command is incomplete, with a lower bound on what is needed', () => {
  const p = new RespParser()
  const b = encode([['SET', 'key', Buffer.alloc(300, 120)]])
  for (let n = 1; n < b.length; n++) {
    assert.equal(p.parse(b, 0, n), INCOMPLETE, `prefix ${n}`)
    assert.ok(p.need > n && p.need <= b.length, `need ${p.need} for prefix ${n}`)
  }
  assert.equal(p.parse(b, 0, b.length), b.length)
})

test('inline commands split on whitespace', () => {
  const p = new RespParser()
  const b = Buffer.from('PING\r\nset  a   b\n')
  const pos = p.parse(b, 0, b.length)
  assert.deepEqual(args(p), ['PING'])
  assert.equal(p.parse(b, pos, b.length), b.length)
  assert.deepEqual(args(p), ['set', 'a', 'b'])
})

test('malformed input gets Redis protocol errors', () => {
  const p = new RespParser()
  const cases: [string, RegExp][] = [
    ['*1\r\n+x\r\n', /expected '\$', got '\+'/],
    ['*2\r\n$99999999999\r\n', /invalid bulk length/],
    ['*1\r\n$600000000\r\n', /invalid bulk length/],
    ['*x\r\n', /invalid multibulk length/],
    ['*1\r\n$1\r\nabc\r\n', /invalid bulk terminator/]
  ]
  for (const [input, re] of cases) {
    const b = Buffer.from(input)
    assert.equal(p.parse(b, 0, b.length), PROTOCOL_ERROR, input)
    assert.match(p.error, re)
  }
  const long = Buffer.alloc(70 * 1024, 97)
  assert.equal(p.parse(long, 0, long.length), PROTOCOL_ERROR)
  assert.match(p.error, /too big inline request/)
})

test('reply writer produces RESP2 that the client parses back', () => {
  const r = new Reply(8)
  r.ok(); r.error('ERR x'); r.int(-42); r.nil(); r.bulkString('héllo')
  r.arrayHeader(2); r.bulk(Buffer.from('ab'), 0, 2); r.bulk(Buffer.alloc(1000, 65), 0, 1000)
  const b = r.take()
  const got: unknown[] = []
  for (let pos = 0; pos < b.length;) {
    const x = parseReply(b, pos)
    if (typeof x === 'symbol') throw new Error('incomplete')
    got.push(x[0])
    pos = x[1]
  }
  assert.equal(got[0], 'OK')
  assert.equal((got[1] as Error).message, 'ERR x')
  assert.equal(got[2], -42)
  assert.equal(got[3], null)
  assert.equal(String(got[4]), 'héllo')
  assert.deepEqual((got[5] as Buffer[]).map(String), ['ab', 'A'.repeat(1000)])
})
