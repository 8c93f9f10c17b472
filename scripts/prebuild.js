#!/usr/bin/env node
// At pack time (prepack): compile the addon for this host with node-gyp, offline, and put it under
// prebuilds/ by platform, arch, C library and Node ABI, so that installs on a matching host need no
// compiler. arraybuffer.cc uses V8's C++ API, so the file is tied to one ABI, not N-API.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { missingForBuild, prebuildPath, root, runNodeGyp } from './addon.js'

const missing = missingForBuild()
if (missing.length > 0) {
  console.error(`prebuild: cannot compile the addon; missing:\n  - ${missing.join('\n  - ')}`)
  process.exit(1)
}
// node-gyp build is incremental over an existing configuration; rebuild configures from scratch.
const status = runNodeGyp(existsSync(join(root, 'build', 'config.gypi')) ? 'build' : 'rebuild')
if (status !== 0) process.exit(status)

const built = join(root, 'build', 'Release', 'pagegift.node')
const out = join(root, prebuildPath())
mkdirSync(dirname(out), { recursive: true })
copyFileSync(built, out)
spawnSync('strip', ['--strip-unneeded', out], { stdio: 'inherit', timeout: 60_000 })
// A prebuild that does not load in this very Node must not ship.
createRequire(import.meta.url)(out).pageSize()
console.error(`prebuild: ${prebuildPath()} (${statSync(out).size} bytes)`)
