// What the install script and the pack-time prebuild share: where a prebuild lives, and how to
// compile the addon offline with node-gyp, naming what is missing when that cannot work.
import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** As src/native.ts names it: prebuilds/<platform>-<arch>/node.abi<N>.<libc>.node (node-gyp-build's tags). */
export function prebuildPath () {
  let libc = 'glibc'
  try { if (readFileSync('/usr/bin/ldd', 'latin1').includes('musl')) libc = 'musl' } catch {}
  return `prebuilds/${process.platform}-${process.arch}/node.abi${process.versions.modules}.${libc}.node`
}

function onPath (names) {
  for (const name of names) {
    if (name.includes('/')) { if (existsSync(name)) return name; continue }
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      if (dir === '') continue
      try { accessSync(join(dir, name), constants.X_OK); return join(dir, name) } catch {}
    }
  }
  return undefined
}

/** Node's headers on this machine: npm's nodedir, the prefix Node runs from, or node-gyp's cache. */
function localHeaders () {
  const dirs = [process.env.npm_config_nodedir, dirname(dirname(process.execPath)),
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'node-gyp', process.versions.node)]
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, 'include', 'node', 'node_api.h')) && existsSync(join(dir, 'include', 'node', 'v8.h'))) return dir
  }
  return undefined
}

/** The node-gyp npm runs scripts with (its bundled copy), else the one next to npm, else one on PATH. */
function nodeGyp () {
  const besideNpm = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  for (const js of [process.env.npm_config_node_gyp, besideNpm]) {
    if (js && existsSync(js)) return [process.execPath, js]
  }
  const onpath = onPath(['node-gyp'])
  return onpath ? [onpath] : undefined
}

/** What a node-gyp build needs that this machine lacks, as readable items. */
export function missingForBuild () {
  const missing = []
  if (!onPath([process.env.CC ?? 'cc', 'gcc', 'clang'])) missing.push('a C compiler (cc, gcc or clang on PATH, or $CC)')
  if (!onPath([process.env.CXX ?? 'c++', 'g++', 'clang++'])) missing.push('a C++ compiler (c++, g++ or clang++ on PATH, or $CXX)')
  if (!onPath(['make'])) missing.push('make')
  if (!onPath([process.env.npm_config_python ?? process.env.PYTHON ?? 'python3', 'python3', 'python'])) missing.push('python3 (node-gyp runs gyp with it)')
  if (!localHeaders()) missing.push(`Node ${process.version}'s headers (include/node/node_api.h and v8.h under ${dirname(dirname(process.execPath))}, $npm_config_nodedir, or node-gyp's cache; this build never downloads them)`)
  if (!nodeGyp()) missing.push('node-gyp (npm runs install scripts with its bundled copy; outside npm put node-gyp on PATH)')
  return missing
}

/** Runs `node-gyp <command>` in the package root against local headers only; returns its exit status. */
export function runNodeGyp (command) {
  const args = [...nodeGyp(), command, `--nodedir=${localHeaders()}`]
  const r = spawnSync(args[0], args.slice(1), { cwd: root, stdio: ['inherit', 2, 2], timeout: 600_000 })
  if (r.error) throw r.error
  return r.status ?? 1
}
