#!/usr/bin/env node
// pagegift-kv: the Redis-protocol store, compiled from src/kv and bundled into one file (see scripts/build.js).
import { loadDist } from './load-dist.js'

const { main } = await loadDist('pagegift-kv.js')
process.exitCode = await main(process.argv.slice(2))
