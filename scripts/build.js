#!/usr/bin/env node
// `npm run build`: tsc compiles src/ to dist/ (ESM JS, .d.ts, source maps with their sources inlined).
// TypeScript 5.9 rewrites `./x.ts` to `./x.js` in the emitted JS but keeps `.ts` in the emitted
// declarations, which a consumer without allowImportingTsExtensions cannot resolve; so the
// declarations' relative specifiers are rewritten here (same length, so nothing else moves).
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

const stamp = join(dist, '.built')

/** The newest mtime of what the output depends on; directories count, so a deleted file shows. */
function newestInput () {
  const inputs = ['src', ...readdirSync(join(root, 'src'), { recursive: true }).map((f) => join('src', String(f))),
    'tsconfig.json', 'tsconfig.build.json', 'scripts/build.js', 'package.json']
  return Math.max(...inputs.map((f) => statSync(join(root, f)).mtimeMs))
}

// npm pack runs prepack and then prepare, both of which build: the second finds dist/ up to date.
if (!process.argv.includes('--force') && existsSync(stamp) && statSync(stamp).mtimeMs > newestInput()) {
  console.error('build: dist/ is up to date')
  process.exit(0)
}
rmSync(dist, { recursive: true, force: true })
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', timeout: 300_000 })
if (r.status !== 0) process.exit(r.status ?? 1)

const relativeTs = /((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*)\.ts\2/g
let rewritten = 0
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue
  const file = join(entry.parentPath ?? entry.path, entry.name)
  const text = readFileSync(file, 'utf8')
  const out = text.replace(relativeTs, (_m, lead, q, path) => `${lead}${q}${path}.js${q}`)
  if (out !== text) { writeFileSync(file, out); rewritten++ }
}
const left = [...readdirSync(dist, { recursive: true })].filter((f) => /\.(js|d\.ts)$/.test(String(f)) && /(from|import)\s*\(?\s*['"]\.{1,2}\/[^'"]*\.ts['"]/.test(readFileSync(join(dist, String(f)), 'utf8')))
if (left.length > 0) {
  console.error(`build: relative .ts specifiers left in ${left.join(', ')}`)
  process.exit(1)
}

// require('pagegift') is Node's require(esm) (Node >= 20.19) behind a CommonJS entry, so that an
// older Node says what it needs instead of a bare ERR_REQUIRE_ESM. Same module instance as import.
for (const [entry, name] of [['index', 'pagegift'], ['qemu/index', 'pagegift/qemu'], ['kv/index', 'pagegift/kv'], ['http/index', 'pagegift/http'], ['map/index', 'pagegift/map']]) {
  const base = entry.split('/').pop()
  writeFileSync(join(dist, `${entry}.cjs`), `'use strict'
try {
  module.exports = require('./${base}.js')
} catch (err) {
  if (err === null || typeof err !== 'object' || err.code !== 'ERR_REQUIRE_ESM') throw err
  throw Object.assign(new Error(\`${name} is an ES module: require('${name}') needs Node >= 20.19 (this is \${process.version}); use import('${name}') instead\`), { code: 'ERR_PAGEGIFT_REQUIRE_ESM', cause: err })
}
`)
}
// The pagegift-kv bin loads one bundled file: Node 20's ESM loader costs ~1 ms of CPU per module,
// and the store's ~50 modules made it start 1.9x slower than `node -e 0`. It sits at dist/'s top
// level so that src/native.ts still finds the package root one level up. Source maps chain to src/.
const { build } = await import('esbuild')
await build({ entryPoints: { 'pagegift-kv': join(dist, 'kv', 'main.js') }, outdir: dist, bundle: true, format: 'esm', platform: 'node', target: 'node20', sourcemap: true, logLevel: 'error' })
writeFileSync(stamp, '')
console.error(`build: dist/ written (${rewritten} declaration files had their .ts specifiers rewritten to .js)`)
