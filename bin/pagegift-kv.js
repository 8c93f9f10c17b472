#!/usr/bin/env node
// pagegift-kv: the Redis-protocol store from src/kv, loaded through tsx like the main CLI.
import { register } from 'tsx/esm/api'
register()
const { main } = await import('../src/kv/main.ts')
process.exitCode = await main(process.argv.slice(2))
