/** Loads the C addon and types its exports. Every call returns >= 0 or -errno unless noted. */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** An opaque handle to a mapping made by `map`. */
export interface MappingHandle { readonly __mapping: unique symbol }
/** An opaque handle to a uv_poll watcher. */
export interface PollHandle { readonly __poll: unique symbol }

export const enum AsyncOp { VmRead = 1, Vmsplice = 2, ReadAll = 3, Pread = 4, Memcpy = 5 }
export const enum PollEvents { Readable = 1, Writable = 2 }
export const MSG_TRUNC = 1
export const MSG_CTRUNC = 2
export const SPLICE_F_MOVE = 1
export const SPLICE_F_GIFT = 8
export const F_SEAL_SEAL = 1
export const F_SEAL_SHRINK = 2
export const F_SEAL_GROW = 4

export interface Native {
  pageSize(): number
  memfdCreate(name: string, size: number, seal: boolean): number
  getSeals(fd: number): number
  fdSize(fd: number): number
  dup(fd: number): number
  close(fd: number): number
  setPtracer(pid: number): number
  punchHole(fd: number, offset: number, length: number): number
  map(fd: number, offset: number, length: number, byteLength: number): [ArrayBuffer, MappingHandle] | number
  mapFixed(handle: MappingHandle, at: number, fd: number, fdOffset: number, length: number): number
  mappingAddress(handle: MappingHandle): number
  detach(ab: ArrayBuffer): void
  address(x: ArrayBuffer | ArrayBufferView): number
  seqpacketPair(): [number, number, number] | number
  pipe(size: number): [number, number, number] | number
  listen(path: string, backlog: number): number
  connect(path: string): number
  accept(fd: number): number
  peerCred(fd: number): [number, number, number] | number
  sendmsg(fd: number, views: ArrayBufferView[], fds: number[]): number
  recvmsg(fd: number, buf: Uint8Array, out: Int32Array): number
  async(op: AsyncOp, a0: number, a1: number, a2: number, a3: number, iov1: Float64Array | null, iov2: Float64Array | null): Promise<number>
  unmapAsync(handle: MappingHandle): void
  pollStart(fd: number, events: number, cb: (status: number, events: number) => void): PollHandle | number
  pollUpdate(handle: PollHandle, events: number): void
  pollClose(handle: PollHandle): void
  /** One systemd notify datagram to `path` ('@' = abstract); bytes sent or -errno. */
  sdNotify(path: string, message: string): number
}

function load (): Native {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..')
  const require = createRequire(import.meta.url)
  const tried: string[] = []
  for (const rel of ['build/Release/pagegift.node', 'build/Debug/pagegift.node']) {
    const file = join(root, rel)
    try {
      return require(file) as Native
    } catch (err) {
      tried.push(`${file}: ${(err as Error).message.split('\n')[0]}`)
    }
  }
  const err = new Error(`pagegift: the native addon is not built. Run \`npm install\` (or \`npx node-gyp rebuild\`) in ${root}.\nTried:\n  ${tried.join('\n  ')}`)
  Object.assign(err, { code: 'ERR_PAGEGIFT_NATIVE_MISSING' })
  throw err
}

export const native: Native = load()
