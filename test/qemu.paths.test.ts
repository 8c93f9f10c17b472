/**
 * The VM directory and its logs: a directory someone else made or can write to, or a symlink in
 * place of it or of a log, is refused with a clear error rather than trusted.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { promisify } from 'node:util'
import { isQemuError } from '../src/qemu/errors.ts'
import { checkDir, defaultDir, ensureDir } from '../src/qemu/paths.ts'
import { openLog } from '../src/qemu/process.ts'

const root = mkdtempSync(join(tmpdir(), 'pagegift-qpaths-'))
after(() => rmSync(root, { recursive: true, force: true }))
const me = process.getuid?.() ?? 0
const asRoot = me === 0 ? false : 'needs root to chown a directory to another uid'
const bin = new URL('../bin/pagegift.js', import.meta.url).pathname

function unsafe (why: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isQemuError(err, 'ERR_QEMU_UNSAFE_DIR'), `expected ERR_QEMU_UNSAFE_DIR, got ${String(err)}`)
    assert.match(err.message, why)
    return true
  }
}

/** defaultDir() with $TMPDIR (which os.tmpdir() honours) pointed at `tmp` and no other override. */
function defaultDirIn (tmp: string, xdg?: string): string {
  const saved = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR, PAGEGIFT_QEMU_DIR: process.env.PAGEGIFT_QEMU_DIR }
  try {
    process.env.TMPDIR = tmp
    delete process.env.PAGEGIFT_QEMU_DIR
    if (xdg === undefined) delete process.env.XDG_RUNTIME_DIR
    else process.env.XDG_RUNTIME_DIR = xdg
    return defaultDir()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

test('the per-user directory in a fresh (sticky, world-writable) tmp is made 0700 and accepted; $XDG_RUNTIME_DIR is preferred', () => {
  const tmp = join(root, 'tmp-fresh')
  mkdirSync(tmp)
  chmodSync(tmp, 0o1777)
  const dir = defaultDirIn(tmp)
  assert.equal(dir, join(tmp, `pagegift-${me}`, 'qemu'))
  ensureDir(dir)
  for (const d of [join(tmp, `pagegift-${me}`), dir]) {
    const st = lstatSync(d)
    assert.ok(st.isDirectory() && st.uid === me && (st.mode & 0o777) === 0o700, `${d}: mode 0${(st.mode & 0o777).toString(8)}`)
  }
  ensureDir(dir) // Again: an existing safe directory is fine.
  assert.equal(defaultDirIn(tmp, '/run/user/1000'), '/run/user/1000/pagegift/qemu')
})

test('a per-user directory that another uid made first is refused', { skip: asRoot }, () => {
  const tmp = join(root, 'tmp-squatted')
  mkdirSync(tmp)
  chmodSync(tmp, 0o1777)
  const squatted = join(tmp, `pagegift-${me}`)
  mkdirSync(squatted, { mode: 0o700 })
  chownSync(squatted, 65534, 65534)
  assert.throws(() => ensureDir(defaultDirIn(tmp)), unsafe(/pagegift-\d+ is owned by uid 65534/))
  assert.ok(!existsSync(join(squatted, 'qemu')), 'nothing was made inside it')
  // The VM directory itself owned by another uid.
  const theirs = join(root, 'theirs')
  mkdirSync(theirs, { mode: 0o700 })
  chownSync(theirs, 65534, 65534)
  assert.throws(() => ensureDir(theirs), unsafe(/theirs is owned by uid 65534, not by us/))
  assert.throws(() => checkDir(theirs), unsafe(/owned by uid 65534/))
})

test('a VM directory of mode 0777, or under a parent others can write to, is refused', () => {
  const open = join(root, 'open')
  mkdirSync(open)
  chmodSync(open, 0o777)
  assert.throws(() => ensureDir(open), unsafe(/has mode 0777, not 0700/))
  const tmp = join(root, 'tmp-open')
  mkdirSync(tmp)
  mkdirSync(join(tmp, `pagegift-${me}`))
  chmodSync(join(tmp, `pagegift-${me}`), 0o777) // Ours, but anyone could swap its 'qemu' for their own.
  assert.throws(() => ensureDir(defaultDirIn(tmp)), unsafe(/is writable by others \(mode 0777\) and not sticky/))
})

test('a symlink in place of the VM directory is refused, even to a safe directory of ours', () => {
  const real = join(root, 'real')
  mkdirSync(real, { mode: 0o700 })
  const link = join(root, 'link')
  symlinkSync(real, link)
  assert.throws(() => ensureDir(link), unsafe(/link is a symlink/))
  assert.throws(() => checkDir(link), unsafe(/is a symlink/))
  // A symlink among the parents is resolved, not refused: the real path is what gets checked.
  ensureDir(join(link, 'vm'))
  assert.ok(lstatSync(join(real, 'vm')).isDirectory())
})

test('a symlinked log file is refused (ELOOP), never followed; a plain one is appended to', () => {
  const dir = join(root, 'logs')
  ensureDir(dir)
  const victim = join(root, 'victim')
  writeFileSync(victim, 'precious\n')
  symlinkSync(victim, join(dir, 'vm1.qemu.log'))
  assert.throws(() => openLog(join(dir, 'vm1.qemu.log')), { code: 'ELOOP' })
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n')
  const fd = openLog(join(dir, 'vm1.keeper.log'))
  writeSync(fd, 'one\n')
  closeSync(fd)
  assert.equal(lstatSync(join(dir, 'vm1.keeper.log')).mode & 0o777, 0o600)
})

test('the CLI refuses an unsafe --dir with the error code, before starting anything', async () => {
  const open = join(root, 'cli-open')
  mkdirSync(open)
  chmodSync(open, 0o777)
  const run = promisify(execFile)
  for (const args of [['start', '--name', 'vm1', '--memory', '64M', '--accel', 'tcg', '--dir', open], ['status', 'vm1', '--dir', open]]) {
    const err = await run(process.execPath, [bin, 'qemu', ...args], { timeout: 30_000 }).then(() => null, (e: { code?: number, stderr?: string }) => e)
    assert.ok(err !== null, `${args[0]} succeeded`)
    assert.notEqual(err.code, 0)
    assert.match(err.stderr ?? '', /\[ERR_QEMU_UNSAFE_DIR\].*mode 0777/)
  }
  assert.ok(!existsSync(join(open, 'vm1.handoff')) && !existsSync(join(open, 'vm1.ctl')), 'nothing was created in it')
})
