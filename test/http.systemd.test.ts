/**
 * systemd's notify protocol: each generation sends READY=1 with MAINPID= its pid to $NOTIFY_SOCKET.
 * systemd cannot run as PID 1 here, so the test is the receiver: a real AF_UNIX datagram socket
 * (bound by a python3 child, since Node has no Unix datagram sockets).
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, test } from 'node:test'
import { notifySystemd } from '../src/http/index.ts'
import { Service, sleep } from './fixtures/http-harness.ts'

const services: Service[] = []
const receivers: ChildProcess[] = []
after(async () => {
  for (const r of receivers) r.kill('SIGKILL')
  for (const s of services) await s.stop()
})

/** Binds `address` ('@name' = abstract) and yields each datagram received. */
async function receiver (address: string): Promise<{ got: string[] }> {
  const py = `
import socket, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
a = sys.argv[1]
s.bind('\\0' + a[1:] if a.startswith('@') else a)
print('bound', flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`
  const child = spawn('python3', ['-c', py, address], { stdio: ['ignore', 'pipe', 'inherit'] })
  receivers.push(child)
  const got: string[] = []
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  await new Promise<void>((resolve) => lines.once('line', () => resolve()))
  lines.on('line', (l) => got.push(JSON.parse(l) as string))
  return { got }
}

async function until (cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out')
    await sleep(10)
  }
}

test('READY=1 and MAINPID= from generation 1, then from its successor (the main pid changes)', async () => {
  const svc = new Service()
  services.push(svc)
  const r = await receiver(join(svc.dir, 'notify.sock'))
  const g1 = await svc.start({ NOTIFY_SOCKET: join(svc.dir, 'notify.sock') })
  await until(() => r.got.length >= 1)
  const g2 = await svc.start({ NOTIFY_SOCKET: join(svc.dir, 'notify.sock') })
  await until(() => r.got.length >= 2)
  assert.deepEqual(r.got, [
    `READY=1\nMAINPID=${g1.child.pid as number}\nSTATUS=generation 1 serving`,
    `READY=1\nMAINPID=${g2.child.pid as number}\nSTATUS=generation 2 serving`,
  ])
})

test('notifySystemd: abstract addresses, no NOTIFY_SOCKET, and errors with code and errno', async () => {
  const name = `@pagegift-test-${process.pid}`
  const r = await receiver(name)
  const saved = process.env.NOTIFY_SOCKET
  try {
    process.env.NOTIFY_SOCKET = name
    assert.equal(notifySystemd('STATUS=hello'), true)
    await until(() => r.got.length >= 1)
    assert.deepEqual(r.got, ['STATUS=hello'])
    delete process.env.NOTIFY_SOCKET
    assert.equal(notifySystemd('READY=1'), false)
    process.env.NOTIFY_SOCKET = '/nonexistent/pagegift-notify.sock'
    assert.throws(() => notifySystemd('READY=1'), { code: 'ENOENT', syscall: 'sendto' })
    assert.throws(() => notifySystemd(''), TypeError)
  } finally {
    if (saved === undefined) delete process.env.NOTIFY_SOCKET
    else process.env.NOTIFY_SOCKET = saved
  }
})
