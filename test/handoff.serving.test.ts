/**
 * `gen.onServing(fn)`: the app's first answers run as the successor's gate opens, not after the rest
 * of ready() (taking over the handoff socket path). Both generations in this process, a real TCP
 * connection moved between them.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import { adoptServer, adoptSocket, exportServer, exportSocket, join, type Generation } from '../src/handoff/index.ts'
import { tempSocket } from './fixtures/handoff-harness.ts'
import { withTimeout } from './helpers.ts'

test('onServing runs once, as the gate opens: before ready() resolves, and the held request is answered from it', async () => {
  const sock = tempSocket()
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const conn = await withTimeout(accepted, 5000, 'accept')
  let gen2: Generation | null = null
  let adopted: net.Server | null = null
  try {
    const gen1 = await join(sock.path, { exitOnHandoff: false })
    const order: string[] = []
    gen1.onServing(() => order.push('gen1 serving'))
    await gen1.ready()
    order.push('gen1 ready')
    assert.deepEqual(order, ['gen1 serving', 'gen1 ready'], 'a first generation runs them when ready() is called')
    await assert.rejects(async () => gen1.onServing(() => {}), { code: 'ERR_PAGEGIFT_HANDOFF_STATE' })
    assert.throws(() => gen1.onServing(42 as unknown as () => void), TypeError)

    gen1.onHandoff(() => ({ handles: { listener: exportServer(server), conn: exportSocket(conn) } }))
    const handedOff = new Promise((resolve) => gen1.once('handedOff', resolve))
    gen2 = await join(sock.path)
    const inh = gen2.inherited
    assert.ok(inh !== null)
    adopted = adoptServer(inh.handles.listener)
    const { socket } = adoptSocket(inh.handles.conn)
    // Sent while the connection is held: nothing may read it before the gate opens.
    client.write('ping\n')
    const reply = withTimeout(new Promise<string>((resolve) => client.once('data', (d) => resolve(String(d)))), 5000, 'the reply')
    let calls = 0
    let readyResolved = false
    gen2.onServing(() => {
      calls++
      order.push('gen2 serving')
      assert.equal(readyResolved, false)
      socket.on('data', (d) => { if (String(d) === 'ping\n') socket.write('pong from gen2\n') })
    })
    await gen2.ready()
    readyResolved = true
    order.push('gen2 ready')
    assert.equal(calls, 1)
    assert.deepEqual(order.slice(2), ['gen2 serving', 'gen2 ready'])
    assert.equal(await reply, 'pong from gen2\n')
    await withTimeout(handedOff, 5000, 'handedOff')
    socket.destroy()
  } finally {
    client.destroy()
    adopted?.close()
    await gen2?.close()
    server.close()
    sock.cleanup()
  }
})

test('an onServing function that throws: the successor serves on, and the error is emitted', async () => {
  const sock = tempSocket()
  let gen2: Generation | null = null
  try {
    const gen1 = await join(sock.path, { exitOnHandoff: false })
    await gen1.ready()
    gen1.onHandoff(() => ({ meta: { n: 1 } }))
    const handedOff = new Promise((resolve) => gen1.once('handedOff', resolve))
    gen2 = await join(sock.path)
    const errors: Error[] = []
    gen2.on('error', (err) => errors.push(err))
    let second = false
    gen2.onServing(() => { throw new Error('app failed to start serving') })
    gen2.onServing(() => { second = true })
    await gen2.ready()
    assert.equal(errors.length, 1)
    assert.match(errors[0].message, /app failed to start serving/)
    assert.equal(second, true, 'the next function still runs')
    await withTimeout(handedOff, 5000, 'handedOff')
    assert.equal(gen2.status().state, 'serving')
    assert.equal(gen2.generation, 2)
  } finally {
    await gen2?.close()
    sock.cleanup()
  }
})
