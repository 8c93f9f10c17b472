#!/usr/bin/env node
// npm's install script. From a tarball it uses the prebuilt addon when one matches this platform,
// arch, C library and Node ABI; otherwise (or in a git checkout, or with --build-from-source) it
// compiles with node-gyp against local headers, offline. When neither can work it says what is missing.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { missingForBuild, prebuildPath, root, runNodeGyp } from './addon.js'

const rel = prebuildPath()
const fromSource = existsSync(join(root, '.git')) || /^(1|true)$/.test(process.env.npm_config_build_from_source ?? '')
let prebuildError = `there is no ${rel} in this package`
if (!fromSource && existsSync(join(root, rel))) {
  try {
    createRequire(import.meta.url)(join(root, rel)).pageSize()
    console.log(`pagegift: using the prebuilt addon ${rel}`)
    process.exit(0)
  } catch (err) {
    prebuildError = `${rel} does not load here: ${String(err.message).split('\n')[0]}`
  }
}

const missing = missingForBuild()
if (missing.length > 0) {
  console.error(`pagegift: cannot install the native addon.
  No prebuild fits: ${fromSource ? 'building from source was asked for (a git checkout, or --build-from-source)' : prebuildError}.
  Building it from source needs what this machine lacks:
    - ${missing.join('\n    - ')}
  Prebuilds ship for: linux-x64 glibc, Node 20 (ABI 115). This is ${process.platform}-${process.arch}, Node ${process.version} (ABI ${process.versions.modules}).`)
  process.exit(1)
}
process.exit(runNodeGyp('rebuild'))
