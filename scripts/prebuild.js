#!/usr/bin/env node
// At pack time (prepack): compile the addon for this host with node-gyp, offline, and put it under
// prebuilds/ by platform, arch, C library and Node ABI, so that installs on a matching host need no
// compiler. arraybuffer.cc uses V8's C++ API, so the file is tied to one ABI, not N-API.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { missingForBuild, prebuildPath, root, runNodeGyp } from './addon.js'

const missing = missingForBuild()
if (missing.length > 0) {
  console.error(`prebuild: cannot compile the addon; missing:\n  - ${missing.join('\n  - ')}`)
  process.exit(1)
}
const built = join(root, 'build', 'Release', 'pagegift.node')
const out = join(root, prebuildPath())

/** Compiles and copies the addon; false when the result does not load in this very Node. */
function attempt (command) {
  const status = runNodeGyp(command)
  if (status !== 0) process.exit(status)
  mkdirSync(dirname(out), { recursive: true })
  copyFileSync(built, out)
  spawnSync('strip', ['--strip-unneeded', out], { stdio: 'inherit', timeout: 60_000 })
  try {
    createRequire(import.meta.url)(out).pageSize()
    return true
  } catch (err) {
    console.error(`prebuild: ${out} does not load: ${String(err.message).split('\n')[0]}`)
    return false
  }
}

// node-gyp build is incremental over an existing configuration; one made for another Node gives an
// addon that does not load here, so then configure from scratch. A prebuild that does not load never ships.
const configured = existsSync(join(root, 'build', 'config.gypi'))
if (!(configured && attempt('build')) && !attempt('rebuild')) {
  rmSync(out, { force: true })
  process.exit(1)
}
console.error(`prebuild: ${prebuildPath()} (${statSync(out).size} bytes)`)
