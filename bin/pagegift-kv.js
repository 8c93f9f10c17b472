#!/usr/bin/env node
// pagegift-kv: the Redis-protocol store, compiled from src/kv to dist/kv.
import { loadDist } from './load-dist.js'

const { main } = await loadDist('kv/main.js')
process.exitCode = await main(process.argv.slice(2))
