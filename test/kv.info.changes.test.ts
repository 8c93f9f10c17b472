/**
 * INFO's rdb_changes_since_last_save and CONFIG RESETSTAT, against a real pagegift-kv process: Redis's
 * list suite reads the first after a blocked pop is served, and ended its unit when it was missing.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KvClient } from '../src/kv/client.ts'
import { startKv, replyText as str, type KvProc } from './fixtures/kv-proc.ts'

let kv: KvProc
let r: KvClient
let dir: string
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kv-changes-'))
  kv = await startKv(['--port', '0', '--rdb-out', join(dir, 'dump.rdb')])
  r = await KvClient.connect(kv.port)
})
after(async () => {
  await r.close()
  await kv.stop()
  rmSync(dir, { recursive: true, force: true })
})

const info = async (section: string, field: string): Promise<string | undefined> =>
  new RegExp(`\r\n${field}:(.*?)\r\n`).exec(String(await r.call('INFO', section)))?.[1]
const changes = async (): Promise<number> => Number(await info('persistence', 'rdb_changes_since_last_save'))

test('rdb_changes_since_last_save counts writes (a push and the blocked pop it serves: 2), not reads, and SAVE zeroes it', async () => {
  const rd = await KvClient.connect(kv.port)
  try {
    const before0 = await changes()
    assert.ok(Number.isInteger(before0))
    rd.send('BLPOP', 'lst', '0')
    const deadline = Date.now() + 10_000
    while (await info('clients', 'blocked_clients') !== '1') {
      assert.ok(Date.now() < deadline, 'BLPOP did not block')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await r.call('LPUSH', 'lst', 'a')
    assert.deepEqual(str(await rd.next(5000)), ['lst', 'a'])
    assert.equal(await changes(), before0 + 2)
    await r.pipeline([['GET', 'x'], ['LRANGE', 'lst', '0', '-1'], ['SET', 'x', '1']])
    assert.equal(await changes(), before0 + 3)
    assert.equal(await r.call('SAVE'), 'OK')
    assert.equal(await changes(), 0)
  } finally {
    await rd.close()
  }
})

test('CONFIG RESETSTAT zeroes commandstats but not the changes since the last SAVE', async () => {
  await r.pipeline([['SET', 'a', '1'], ['SET', 'b', '2'], ['GET', 'a']])
  const n = await changes()
  assert.ok(n >= 2)
  assert.match(String(await info('commandstats', 'cmdstat_set')), /^calls=\d+,/)
  assert.equal(await r.call('CONFIG', 'RESETSTAT'), 'OK')
  assert.equal(await info('commandstats', 'cmdstat_set'), undefined)
  assert.equal(await changes(), n)
  await r.call('SET', 'a', '3')
  assert.equal(await info('commandstats', 'cmdstat_set'), 'calls=1,rejected_calls=0,failed_calls=0')
  assert.equal(await changes(), n + 1)
})
