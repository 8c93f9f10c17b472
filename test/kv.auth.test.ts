import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { rawExchange, startKv, runTool, type KvProc, replyText as str, withUpgradableKv, type UpgradableKv } from './fixtures/kv-proc.ts'
import { KvClient } from '../src/kv/client.ts'
import { parseOptions, PASSWORD_ENV, type KvOptions } from '../src/kv/options.ts'

const NOAUTH = 'ERR:NOAUTH Authentication required.'
const WRONGPASS = 'ERR:WRONGPASS invalid username-password pair or user is disabled.'

async function run (c: KvClient, ...cmds: string[][]): Promise<unknown[]> {
  return (await c.pipeline(cmds)).map(str)
}

/** Sends raw bytes; resolves with what came back within `ms` and whether the server closed. */
const raw = async (port: number, bytes: string, ms = 300): Promise<{ text: string, closed: boolean }> => await rawExchange(port, (s) => s.write(bytes), ms)

test('options: --requirepass, --requirepass-file, the environment variable, --bind and its alias --host', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-opt-'))
  try {
    const file = join(dir, 'pw')
    writeFileSync(file, 's3cret\n', { mode: 0o600 })
    const o = (argv: string[], env: NodeJS.ProcessEnv = {}): KvOptions => parseOptions(argv, env) as KvOptions
    assert.equal(o(['--requirepass', 'a b']).requirepass, 'a b')
    assert.equal(o(['--requirepass-file', file]).requirepass, 's3cret')
    assert.equal(o([], { [PASSWORD_ENV]: 'fromenv' }).requirepass, 'fromenv')
    assert.equal(o(['--requirepass', 'cli'], { [PASSWORD_ENV]: 'fromenv' }).requirepass, 'cli')
    assert.equal(o(['--requirepass', '']).requirepass, null)
    assert.equal(o([]).requirepass, null)
    assert.match(String(parseOptions(['--requirepass', 'x', '--requirepass-file', file], {})), /not both/)
    assert.match(String(parseOptions(['--requirepass-file', join(dir, 'none')], {})), /cannot read/)
    writeFileSync(file, '\n')
    assert.match(String(parseOptions(['--requirepass-file', file], {})), /on one line/)
    assert.deepEqual(o(['--bind', '127.0.0.1 -::1']).bind, ['127.0.0.1', '-::1'])
    assert.deepEqual(o(['--host', '0.0.0.0']).bind, ['0.0.0.0'])
    assert.deepEqual(o([]).bind, ['127.0.0.1'])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('requirepass: Redis replies for NOAUTH, AUTH <password>, AUTH default <password>, WRONGPASS; real redis-cli', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-auth-'))
  writeFileSync(join(dir, 'pw'), 'sekret\n', { mode: 0o600 })
  const kv = await startKv(['--port', '0', '--requirepass-file', join(dir, 'pw')])
  try {
    const c = await KvClient.connect(kv.port)
    // The same commands on redis-server 7.0.15 with requirepass sekret gave these replies.
    assert.deepEqual(await run(c, ['GET', 'a'], ['NOPE', 'x'], ['GET'], ['AUTH'], ['AUTH', 'a', 'b', 'c'], ['AUTH', 'wrong'], ['AUTH', 'default', 'wrong'], ['AUTH', 'bob', 'sekret'], ['PING']), [
      NOAUTH, "ERR:ERR unknown command 'NOPE', with args beginning with: 'x' ", "ERR:ERR wrong number of arguments for 'get' command",
      "ERR:ERR wrong number of arguments for 'auth' command", 'ERR:ERR syntax error', WRONGPASS, WRONGPASS, WRONGPASS, NOAUTH
    ])
    assert.deepEqual(await run(c, ['AUTH', 'sekret'], ['AUTH', 'wrong'], ['SET', 'a', '1'], ['GET', 'a']), ['OK', WRONGPASS, 'OK', '1'])
    await c.close()
    const d = await KvClient.connect(kv.port)
    assert.deepEqual(await run(d, ['AUTH', 'default', 'sekret'], ['GET', 'a']), ['OK', '1'])
    await d.close()
    // Before AUTH, no big allocations (Redis's CVE-2021-32675 limits); after it, the usual limits.
    assert.deepEqual(await raw(kv.port, '*11\r\n'), { text: '-ERR Protocol error: unauthenticated multibulk length\r\n', closed: true })
    assert.deepEqual(await raw(kv.port, '*1\r\n$16385\r\n'), { text: '-ERR Protocol error: unauthenticated bulk length\r\n', closed: true })
    assert.deepEqual(await raw(kv.port, 'AUTH sekret\r\n*1\r\n$16385\r\n'), { text: '+OK\r\n', closed: false })
    assert.deepEqual(await raw(kv.port, 'QUIT\r\n'), { text: '+OK\r\n', closed: true })
    const p = String(kv.port)
    const noauth = await runTool('redis-cli', ['-p', p, 'GET', 'a'])
    assert.match(noauth.stdout + noauth.stderr, /NOAUTH Authentication required\./)
    const ok = await runTool('redis-cli', ['-p', p, '-a', 'sekret', '--no-auth-warning', 'GET', 'a'])
    assert.equal(ok.stdout.trim(), '1', ok.stderr)
    const user = await runTool('redis-cli', ['-p', p, '--user', 'default', '--pass', 'sekret', '--no-auth-warning', 'SET', 'b', '2'])
    assert.equal(user.stdout.trim(), 'OK', user.stderr)
    const wrong = await runTool('redis-cli', ['-p', p, '-a', 'nope', '--no-auth-warning', 'GET', 'a'])
    assert.match(wrong.stdout + wrong.stderr, /WRONGPASS invalid username-password pair or user is disabled\./)
  } finally {
    await kv.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('no requirepass: AUTH <password> is an error, AUTH default <anything> is OK, another user is WRONGPASS', async () => {
  const kv = await startKv(['--port', '0'])
  try {
    const c = await KvClient.connect(kv.port)
    assert.deepEqual(await run(c, ['AUTH', 'x'], ['AUTH', 'default', 'x'], ['AUTH', 'bob', 'x'], ['PING']), [
      'ERR:ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?', 'OK', WRONGPASS, 'PONG'
    ])
    // CONFIG SET requirepass: clients connected before stay authenticated, as in Redis; new ones must AUTH.
    assert.deepEqual(await run(c, ['CONFIG', 'SET', 'requirepass', 'late'], ['PING']), ['OK', 'PONG'])
    const d = await KvClient.connect(kv.port)
    assert.deepEqual(await run(d, ['PING'], ['AUTH', 'late'], ['PING']), [NOAUTH, 'OK', 'PONG'])
    await d.close()
    await c.close()
  } finally {
    await kv.stop()
  }
})

/** Upgrades `kv` with `extraArgs` after its handoff arguments and `env` added to the environment; resolves once the predecessor has exited. */
async function upgrade (kv: UpgradableKv, extraArgs: string[], env: Record<string, string> = {}): Promise<KvProc> {
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    return await kv.upgrade(extraArgs)
  } finally {
    for (const k of Object.keys(env)) { if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k] }
  }
}

test('AUTH across live upgrades: an authenticated client stays so, a successor without a password keeps the old one, a new password applies to new AUTHs', async () => {
  const passwordFile = (dir: string): string[] => {
    const pw = join(dir, 'pw')
    writeFileSync(pw, 'one\n', { mode: 0o600 })
    return ['--requirepass-file', pw]
  }
  await withUpgradableKv('kv-authup-', passwordFile, async (kv) => {
    const authed = await KvClient.connect(kv.port)
    const anon = await KvClient.connect(kv.port)
    assert.deepEqual(await run(authed, ['AUTH', 'one'], ['SET', 'k', 'v']), ['OK', 'OK'])
    assert.deepEqual(await run(anon, ['GET', 'k']), [NOAUTH])
    // 1: the relaunch passes the same password, through the environment this time.
    await upgrade(kv, [], { [PASSWORD_ENV]: 'one' })
    assert.deepEqual(await run(authed, ['GET', 'k']), ['v'])
    assert.deepEqual(await run(anon, ['GET', 'k']), [NOAUTH])
    // 2: a relaunch without any password keeps the predecessor's.
    await upgrade(kv, [])
    assert.deepEqual(await run(authed, ['GET', 'k']), ['v'])
    assert.deepEqual(await run(anon, ['GET', 'k'], ['AUTH', 'one'], ['GET', 'k']), [NOAUTH, 'OK', 'v'])
    const fresh = await KvClient.connect(kv.port)
    assert.deepEqual(await run(fresh, ['GET', 'k']), [NOAUTH])
    // 3: a different password: sessions keep their state; AUTH now takes the new one only.
    await upgrade(kv, ['--requirepass', 'two'])
    assert.deepEqual(await run(authed, ['GET', 'k']), ['v'])
    assert.deepEqual(await run(fresh, ['AUTH', 'one'], ['AUTH', 'two'], ['GET', 'k']), [WRONGPASS, 'OK', 'v'])
    assert.match(String(await authed.call('INFO', 'pagegift')), /generation:4\r\n/)
    for (const c of [authed, anon, fresh]) await c.close()
  })
})

test('--bind: every address listens on one port; a "-" address that is not there is skipped; CONFIG GET bind', async () => {
  const kv = await startKv(['--port', '0', '--bind', '127.0.0.1 -192.0.2.1'])
  try {
    const c = await KvClient.connect(kv.port)
    assert.deepEqual(await run(c, ['CONFIG', 'GET', 'bind']), [['bind', '127.0.0.1 -192.0.2.1']])
    await c.close()
  } finally {
    await kv.stop()
  }
  await assert.rejects(startKv(['--port', '0', '--bind', '192.0.2.1'], 5000), /EADDRNOTAVAIL/)
})
