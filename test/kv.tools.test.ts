import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startKv, runTool, type KvProc } from './fixtures/kv-proc.ts'

let kv: KvProc
before(async () => { kv = await startKv(['--port', '0']) })
after(async () => { await kv.stop() })

test('the real redis-cli: SET, GET, INFO, SCAN typed on its stdin', async () => {
  const input = 'SET greeting "hello world"\nGET greeting\nINCR visits\nINFO keyspace\nSCAN 0 MATCH gr*\nGET missing\nNOSUCH x\n'
  const r = await runTool('redis-cli', ['-p', String(kv.port)], input)
  assert.equal(r.code, 0, r.stderr)
  const lines = r.stdout.split('\n')
  assert.equal(lines[0], 'OK')
  assert.equal(lines[1], 'hello world')
  assert.equal(lines[2], '1')
  assert.ok(r.stdout.includes('db0:keys=2,expires=0'), r.stdout)
  assert.ok(r.stdout.includes('0\ngreeting\n'), r.stdout)
  assert.ok(r.stdout.includes("ERR unknown command 'NOSUCH'"), r.stdout)
})

test('redis-cli --scan and INFO pagegift work as one-shot commands', async () => {
  const scan = await runTool('redis-cli', ['-p', String(kv.port), '--scan', '--pattern', 'visit*'])
  assert.equal(scan.stdout.trim(), 'visits')
  const info = await runTool('redis-cli', ['-p', String(kv.port), 'INFO', 'pagegift'])
  assert.match(info.stdout, /generation:1/)
})

test('a short redis-benchmark run (SET/GET, 50 clients, pipelined, random keys) has no errors', async () => {
  const r = await runTool('redis-benchmark', ['-p', String(kv.port), '-t', 'set,get', '-n', '50000', '-r', '10000', '-d', '64', '-c', '50', '-P', '16', '-q', '--csv'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /"SET","\d+/)
  assert.match(r.stdout, /"GET","\d+/)
  assert.doesNotMatch(r.stdout + r.stderr, /error/i)
  const dbsize = await runTool('redis-cli', ['-p', String(kv.port), 'DBSIZE'])
  assert.ok(Number(dbsize.stdout) > 9000 && Number(dbsize.stdout) <= 10002, dbsize.stdout)
})
