/**
 * The published package as a user gets it: `npm pack` once, then `npm install <tarball>` offline in
 * an empty project whose PATH holds node and npm but no C compiler, make or python, so only the
 * prebuilt addon can work. ESM, CommonJS and TypeScript consumers, and both bins, run from there.
 */
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { after, before, test } from 'node:test'
import { pageSize } from '../src/index.ts'
import { root, withTimeout } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'pagegift-package-'))
const app = join(dir, 'app')
const bin = join(dir, 'bin')
after(() => rmSync(dir, { recursive: true, force: true }))

/** node, npm and sh (npm runs scripts with it) only: no cc, gcc, g++, make or python, so node-gyp could not build. */
const toolPath = bin
/** The environment of a user's shell: no npm_* variables inherited from the `npm test` running us. */
const userEnv = (): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_|^INIT_CWD$|^PAGEGIFT_/i.test(k))),
  PATH: toolPath,
})

interface Run { code: number | null, stdout: string, stderr: string }
function run (file: string, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: opts.cwd ?? app, env: opts.env ?? userEnv(), timeout: opts.timeoutMs ?? 60_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : null), stdout, stderr }))
  })
}

function onHostPath (name: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(delimiter)) if (d !== '' && existsSync(join(d, name))) return join(d, name)
  return undefined
}

let tarball: { filename: string, size: number, entryCount: number, files: Array<{ path: string }> }
let installOutput = ''

before(async () => {
  mkdirSync(bin)
  const npm = onHostPath('npm')
  const npx = onHostPath('npx')
  assert.ok(npm !== undefined && npx !== undefined, 'npm and npx are on PATH')
  for (const [name, target] of [['node', process.execPath], ['npm', npm], ['npx', npx], ['sh', '/bin/sh']]) symlinkSync(target, join(bin, name))
  // Pack from the checkout as a maintainer would (prepack builds dist/ and the prebuild).
  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, env: { ...userEnv(), PATH: process.env.PATH }, timeoutMs: 240_000 })
  assert.equal(packed.code, 0, packed.stderr)
  tarball = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[\n')))[0]
  console.log(`# tarball ${tarball.filename}: ${tarball.size} bytes, ${tarball.entryCount} files`)
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  const installed = await run(join(bin, 'npm'), ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', join(dir, tarball.filename)], { timeoutMs: 120_000 })
  installOutput = installed.stdout + installed.stderr
  assert.equal(installed.code, 0, installOutput)
})

test('the tarball holds the built package and the prebuild, and no tests, benchmarks, tools, fixtures or sources', () => {
  const files = tarball.files.map((f) => f.path)
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/index.cjs', 'dist/kv/index.js', 'dist/qemu/index.d.ts', 'bin/pagegift.js', 'bin/pagegift-kv.js',
    'binding.gyp', 'native/arraybuffer.cc', 'scripts/install.js', `prebuilds/linux-x64/node.abi${process.versions.modules}.glibc.node`, 'README.md', 'package.json']) {
    assert.ok(files.includes(f), `${f} is in the tarball`)
  }
  const unwanted = files.filter((f) => /^(test|bench|tools|examples|src|docs)\/|fixtures|\.test\.|tsconfig/.test(f))
  assert.deepEqual(unwanted, [])
})

test('the shipped JS and declarations import ./x.js, never ./x.ts (tsc keeps .ts in declarations)', () => {
  const dist = join(app, 'node_modules', 'pagegift', 'dist')
  const files = readdirSync(dist, { recursive: true }).map(String).filter((f) => /\.(js|cjs|d\.ts)$/.test(f))
  assert.ok(files.length > 40)
  const relative = /(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]*)['"]/g
  let checked = 0
  for (const f of files) {
    for (const m of readFileSync(join(dist, f), 'utf8').matchAll(relative)) {
      assert.match(m[1], /\.c?js$/, `${f} imports ${m[1]}`)
      checked++
    }
  }
  assert.ok(checked > 100)
})

test('install used the prebuild: node-gyp never ran, and there is no compiler it could have used', () => {
  for (const tool of ['cc', 'gcc', 'g++', 'make', 'python3']) assert.ok(!existsSync(join(toolPath, tool)), `${tool} is not on the install PATH`)
  assert.match(installOutput, /pagegift: using the prebuilt addon prebuilds\/linux-x64\/node\.abi\d+\.glibc\.node/)
  assert.doesNotMatch(installOutput, /gyp info|node-gyp/)
  const pkg = join(app, 'node_modules', 'pagegift')
  assert.ok(!existsSync(join(pkg, 'build')), 'no build/ directory: nothing was compiled')
  assert.deepEqual(readdirSync(join(app, 'node_modules')).filter((d) => !d.startsWith('.')), ['pagegift'], 'no runtime dependencies (no tsx, no esbuild)')
})

test('ESM: the issue\'s one-liner prints the page size', async () => {
  const r = await run(join(bin, 'node'), ['--input-type=module', '-e', "import('pagegift').then((m) => console.log(m.pageSize))"])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), String(pageSize))
})

test('ESM: an .mjs gifts 64 MiB to a child by move, and the child checks every byte', async () => {
  writeFileSync(join(app, 'reader.mjs'), `import { createHash } from 'node:crypto'
import { Channel } from 'pagegift'
const ch = Channel.fromFd(3)
const g = await ch.receive()
const sha = createHash('sha256').update(new Uint8Array(g.buffers[0])).digest('hex')
await ch.send({ path: g.path, bytes: g.bytes, sha })
ch.close()
`)
  writeFileSync(join(app, 'app.mjs'), `import { spawn } from 'node:child_process'
import { createHash, randomFillSync } from 'node:crypto'
import { alloc, channelPair } from 'pagegift'
const [mine, theirs] = channelPair()
const child = spawn(process.execPath, ['reader.mjs'], { stdio: ['ignore', 'inherit', 'inherit', theirs.fd], timeout: 60000 })
theirs.close()
const state = alloc(64 << 20)
randomFillSync(new Uint8Array(state))
const sha = createHash('sha256').update(new Uint8Array(state)).digest('hex')
const receipt = await mine.gift(state)
const reply = (await mine.recv({ timeoutMs: 60000 })).msg
console.log(JSON.stringify({ receipt, reply, same: reply.sha === sha, left: state.byteLength }))
mine.close()
child.on('exit', (code) => process.exit(code ?? 1))
`)
  const r = await run(join(bin, 'node'), ['app.mjs'])
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  assert.deepEqual(out.receipt, { path: 'move', bytes: 64 << 20 })
  assert.equal(out.reply.path, 'move')
  assert.equal(out.same, true, 'the child read exactly the bytes written')
  assert.equal(out.left, 0, 'the sender\'s buffer is detached')
})

test('CommonJS: require() of pagegift, pagegift/kv and pagegift/qemu (require of ESM, no top-level await)', async () => {
  writeFileSync(join(app, 'app.cjs'), `const pg = require('pagegift')
const kv = require('pagegift/kv')
const qemu = require('pagegift/qemu')
const ab = pg.alloc(pg.pageSize)
console.log(JSON.stringify({ giftable: pg.isGiftable(ab), kv: typeof kv.main, client: typeof kv.KvClient, qemu: Object.keys(qemu).length > 0, same: pg === require('pagegift') }))
`)
  const r = await run(join(bin, 'node'), ['app.cjs'])
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), { giftable: true, kv: 'function', client: 'function', qemu: true, same: true })
  assert.equal(r.stderr, '', 'no warning either')
  // A Node without require(esm) (older than 20.19) gets an error that says what it needs.
  const old = await run(join(bin, 'node'), ['--no-experimental-require-module', '-e', "try { require('pagegift') } catch (e) { console.log(e.code, e.message) }"])
  assert.match(old.stdout, /^ERR_PAGEGIFT_REQUIRE_ESM .*needs Node >= 20\.19/)
})

test('no prebuild and no compiler: install names what is missing, and the loader lists what it tried', async () => {
  const pkg = join(app, 'node_modules', 'pagegift')
  const install = await run(join(bin, 'node'), [join(pkg, 'scripts', 'install.js')], { env: { ...userEnv(), npm_config_build_from_source: 'true' } })
  assert.equal(install.code, 1)
  for (const what of [/a C compiler/, /a C\+\+ compiler/, /make/, /python3/]) assert.match(install.stderr, what)
  const bare = join(dir, 'bare', 'node_modules', 'pagegift')
  cpSync(pkg, bare, { recursive: true, filter: (src) => !src.includes('prebuilds') })
  const r = await run(join(bin, 'node'), ['--input-type=module', '-e', "import('pagegift').catch((e) => console.log(e.code, e.message))"], { cwd: join(dir, 'bare') })
  assert.match(r.stdout, /^ERR_PAGEGIFT_NATIVE_MISSING/)
  assert.match(r.stdout, /build\/Release\/pagegift\.node: not found/)
  assert.match(r.stdout, /prebuilds\/linux-x64\/node\.abi\d+\.glibc\.node: not found/)
})

test('TypeScript: a consumer type-checks with moduleResolution nodenext and bundler, without allowImportingTsExtensions', async () => {
  writeFileSync(join(app, 'consumer.ts'), `import { alloc, channelPair, listen, type GiftReceipt } from 'pagegift'
import { KvClient, main } from 'pagegift/kv'
import * as qemu from 'pagegift/qemu'

const state: ArrayBuffer = alloc(1 << 20)
const [mine] = channelPair()
const receipt: Promise<GiftReceipt> = mine.gift(state, { meta: { version: 2 } })
const started: Promise<number> = main(['--port', '0'])
void [receipt, started, listen, KvClient, qemu]
// @ts-expect-error alloc takes a byte length
alloc('1 MiB')
`)
  const typeRoots = [join(root, 'node_modules', '@types')]
  const configs = {
    nodenext: { module: 'nodenext', moduleResolution: 'nodenext' },
    bundler: { module: 'esnext', moduleResolution: 'bundler' },
  }
  for (const [name, resolution] of Object.entries(configs)) {
    writeFileSync(join(app, `tsconfig.${name}.json`), JSON.stringify({
      compilerOptions: { ...resolution, target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'], typeRoots },
      files: ['consumer.ts'],
    }))
    const r = await run(join(bin, 'node'), [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', `tsconfig.${name}.json`], { timeoutMs: 120_000 })
    assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`)
  }
})

test('npx pagegift --version and doctor', async () => {
  const version = await run(join(bin, 'npx'), ['pagegift', '--version'])
  assert.equal(version.code, 0, version.stderr)
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/)
  const doctor = await run(join(bin, 'npx'), ['pagegift', 'doctor'])
  assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr)
  assert.match(doctor.stdout, /memfd \+ seals/)
  assert.match(doctor.stdout, /takes: move/)
})

test('npx pagegift-kv --port 0 answers redis-cli PING', async () => {
  const redisCli = onHostPath('redis-cli')
  assert.ok(redisCli !== undefined, 'redis-cli is installed (Debian redis-tools; .ci/run installs it)')
  const kv = spawn(join(bin, 'npx'), ['pagegift-kv', '--port', '0'], { cwd: app, env: userEnv(), stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000, killSignal: 'SIGKILL' })
  const exited = new Promise((resolve) => kv.on('exit', resolve))
  let out = ''
  try {
    const serving = new Promise<RegExpMatchArray>((resolve) => kv.stdout.on('data', (d) => {
      out += d
      const m = out.match(/serving on 127\.0\.0\.1:(\d+) pid (\d+)/)
      if (m !== null) resolve(m)
    }))
    const [, port, pid] = await withTimeout(serving, 30_000, `pagegift-kv to listen (stdout: ${out})`)
    try {
      const pong = await run(redisCli, ['-p', port, 'PING'], { env: process.env, timeoutMs: 10_000 })
      assert.equal(pong.stdout.trim(), 'PONG', pong.stderr)
    } finally {
      process.kill(Number(pid), 'SIGTERM')
    }
    await withTimeout(exited, 30_000, 'pagegift-kv to exit on SIGTERM')
  } finally {
    kv.kill('SIGKILL')
  }
})
