/** Runs pagegift-kv from this checkout's TypeScript source (through tsx), for tools that must test the current code without a build. */
import { main } from '../../src/kv/main.ts'

process.exitCode = await main(process.argv.slice(2))
