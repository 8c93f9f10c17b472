#!/usr/bin/env node
// The `pagegift` command: the compiled CLI in dist/ (built by `npm run build`, run by prepack/prepare).
import { loadDist } from './load-dist.js'

const { main } = await loadDist('cli/main.js')
process.exitCode = await main(process.argv.slice(2))
