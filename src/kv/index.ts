/**
 * `pagegift/kv`: the Redis-protocol store as a module. `main(argv)` is the `pagegift-kv` command
 * (start a store, or live-upgrade the one on `--handoff`); `KvClient` is its pipelined RESP client.
 */
export { main } from './main.ts'
export { parseOptions, type KvOptions } from './options.ts'
export { KvClient, RespError, type RespValue, type Arg } from './client.ts'
