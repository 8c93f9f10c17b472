/** A listener out of fds (EMFILE) must neither spin nor lose its waiting peers. */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { connect, type Channel } from '../src/index.ts'
import { fixtures } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'pagegift-accept-'))
after(() => rmSync(dir, { recursive: true, force: true }))

interface Report { during: { events: number, codes: string[], cpuMs: number }, accepted: boolean, acceptMs: number, eventsAfter: number }

/** Runs the fixture out of fds, connects while it is out, and returns its report once it freed `free` fds. */
async function outOfFds (name: string, free: number): Promise<Report> {
  const path = join(dir, name)
  // A low fd limit, set by the shell before it execs node, so the fixture can use up every fd quickly.
  const child = spawn('/bin/sh', ['-c', 'ulimit -n 200 && exec "$0" "$@"', process.execPath, '--import', 'tsx', join(fixtures, 'server-emfile.ts'), path, String(free)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const exited = new Promise((resolve) => child.on('exit', resolve))
  let out = ''
  let ch: Channel | undefined
  const full = new Promise<void>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d
      if (out.includes('full\n')) resolve()
    })
  })
  try {
    await Promise.race([full, exited])
    assert.match(out, /full/, 'the fixture started and used up its fds')
    ch = await connect(path) // Completes at once: the kernel queues it in the backlog.
    const hello = await ch.recv({ timeoutMs: 20_000 })
    assert.deepEqual(hello.msg, { hello: 'after EMFILE' })
    await exited
    return JSON.parse(out.trim().split('\n').at(-1) ?? '') as Report
  } finally {
    ch?.close()
    clearTimeout(killer)
    child.kill('SIGKILL')
  }
}

test('on EMFILE the accept loop pauses (one rejected event, no CPU burnt) and accepts the waiting peer once fds free up', async () => {
  const report = await outOfFds('emfile.sock', 8)
  assert.deepEqual(report.during.codes, ['EMFILE'])
  assert.equal(report.during.events, 1, `the accept loop spun: ${report.during.events} 'rejected' events in 1 s`)
  assert.ok(report.during.cpuMs < 300, `the accept loop spun: ${report.during.cpuMs} ms of CPU in 1 s`)
  assert.equal(report.accepted, true)
  assert.ok(report.acceptMs < 3000, `accepted ${report.acceptMs} ms after fds were freed`)
  assert.equal(report.eventsAfter, 0)
})

test('a peer accepted with the one fd that freed up does not report the shortage a second time', async () => {
  // The kernel checks for a free fd before it looks at the backlog: the accept after that peer's
  // gets EMFILE again, with nobody waiting. That is the same shortage (a runtime fd that closes
  // mid-shortage made this happen in CI), not a new one.
  const report = await outOfFds('emfile1.sock', 1)
  assert.equal(report.during.events, 1)
  assert.equal(report.accepted, true)
  assert.equal(report.eventsAfter, 0, 'the shortage was reported again after the peer got through')
})
