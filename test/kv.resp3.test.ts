import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { join } from 'node:path'
import { Store } from '../src/kv/store.ts'
import { KvServer } from '../src/kv/server.ts'
import { rawExchange, withUpgradableKv } from './fixtures/kv-proc.ts'

/** Sends `lines` (inline commands) one write each, and returns everything answered within `ms`. */
async function talk (port: number, lines: string[], ms = 300): Promise<string> {
  const r = await rawExchange(port, async (s) => {
    for (const l of lines) {
      s.write(l + '\r\n')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }, ms)
  return r.text
}

const HELLO3 = '%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n'

test('HELLO: protocol 2 and 3, AUTH and SETNAME options, and Redis\'s errors', async () => {
  const server = new KvServer(new Store({ segmentSize: 1 << 20 }))
  const port = await server.listen(0)
  try {
    const text = await talk(port, ['HELLO 3'])
    assert.ok(text.startsWith(HELLO3), text)
    assert.match(text, /\$4\r\nmode\r\n\$10\r\nstandalone\r\n\$4\r\nrole\r\n\$6\r\nmaster\r\n\$7\r\nmodules\r\n\*0\r\n$/)
    assert.match(await talk(port, ['HELLO']), /^\*14\r\n\$6\r\nserver\r\n.*\$5\r\nproto\r\n:2\r\n/s)
    assert.equal(await talk(port, ['HELLO 4', 'HELLO x', 'HELLO 3 FOO', 'HELLO 3 SETNAME', '*4\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$7\r\nSETNAME\r\n$3\r\na b']), [
      '-NOPROTO unsupported protocol version\r\n', '-ERR Protocol version is not an integer or out of range\r\n',
      "-ERR Syntax error in HELLO option 'FOO'\r\n", "-ERR Syntax error in HELLO option 'SETNAME'\r\n",
      '-ERR Client names cannot contain spaces, newlines or special characters.\r\n'].join(''))
    assert.match(await talk(port, ['HELLO 2 SETNAME me', 'CLIENT GETNAME']), /\$2\r\nme\r\n$/)
    server.setPassword('secret')
    assert.equal(await talk(port, ['HELLO 3', 'HELLO 3 AUTH default wrong', 'GET k']), [
      '-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n',
      '-WRONGPASS invalid username-password pair or user is disabled.\r\n', '-NOAUTH Authentication required.\r\n'].join(''))
    assert.match(await talk(port, ['HELLO 3 AUTH default secret', 'GET k']), /^%7\r\n.*_\r\n$/s)
    // RESET goes back to RESP2 and, with a password set, to unauthenticated.
    assert.match(await talk(port, ['HELLO 3 AUTH default secret', 'RESET', 'GET k']), /\+RESET\r\n-NOAUTH Authentication required\.\r\n$/)
  } finally {
    await server.close()
  }
})

test('RESP3 replies: nulls, maps (HGETALL, CONFIG GET), doubles (ZSCORE), and RESP2 unchanged', async () => {
  const server = new KvServer(new Store({ segmentSize: 1 << 20 }))
  const port = await server.listen(0)
  try {
    const setup = ['HSET h f v', 'ZADD z 1.5 m', 'ZADD z inf big']
    await talk(port, setup)
    const cmds = ['GET nope', 'HGETALL h', 'HGETALL nope', 'ZSCORE z m', 'ZSCORE z big', 'ZSCORE z nope', 'CONFIG GET maxmemory', 'MGET nope', 'BLPOP q 0.01']
    const resp3 = await talk(port, ['HELLO 3', ...cmds])
    assert.ok(resp3.endsWith(['_', '%1', '$1', 'f', '$1', 'v', '%0', ',1.5', ',inf', '_', '%1', '$9', 'maxmemory', '$1', '0', '*1', '_', '_', ''].join('\r\n')), resp3)
    const resp2 = await talk(port, cmds)
    assert.equal(resp2, ['$-1', '*2', '$1', 'f', '$1', 'v', '*0', '$3', '1.5', '$3', 'inf', '$-1', '*2', '$9', 'maxmemory', '$1', '0', '*1', '$-1', '*-1', ''].join('\r\n'))
  } finally {
    await server.close()
  }
})

test('live upgrade: a RESP3 client stays RESP3, with its name and database', async () => {
  await withUpgradableKv('kv-resp3-', [], async (kv) => {
    const s = net.connect(kv.port, '127.0.0.1')
    try {
      let text = ''
      s.on('data', (d) => { text += d.toString('latin1') })
      await new Promise((resolve) => s.once('connect', resolve))
      const until = async (what: string): Promise<void> => {
        for (const end = Date.now() + 20_000; !text.includes(what);) {
          if (Date.now() > end) throw new Error(`no ${JSON.stringify(what)} in ${JSON.stringify(text)}`)
          await new Promise((resolve) => setTimeout(resolve, 10))
        }
      }
      s.write('HELLO 3 SETNAME three\r\nSELECT 2\r\nHSET h f v\r\n')
      await until('+OK\r\n:1\r\n')
      await kv.upgrade()
      text = ''
      s.write('GET nope\r\nHGETALL h\r\nCLIENT GETNAME\r\nINFO pagegift\r\n')
      await until('generation:2\r\n')
      assert.ok(text.startsWith('_\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n$5\r\nthree\r\n'), text)
    } finally {
      s.destroy()
    }
  })
})
