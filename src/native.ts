/** Loads the C addon and types its exports. Every call returns >= 0 or -errno unless noted. */
import { existsSync, readFileSync } from 'node:fs'
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
}

/** The C library this process runs on: prebuilds are tagged by it, as node-gyp-build does. */
function libc (): 'glibc' | 'musl' {
  // detect-libc's fast check: musl's ldd is a script naming musl; process.report costs ~20 ms.
  try {
    return readFileSync('/usr/bin/ldd', 'latin1').includes('musl') ? 'musl' : 'glibc'
  } catch {
    return 'glibc'
  }
}

/** The prebuild's path under the package root, named as node-gyp-build names them. */
function prebuildPath (): string {
  return `prebuilds/${process.platform}-${process.arch}/node.abi${process.versions.modules}.${libc()}.node`
}

/**
 * A local build (build/Release, from `npm install` compiling with node-gyp) wins; else the prebuild
 * that matches this platform, arch, C library and Node ABI (the addon uses V8's C++ API, so it is
 * tied to one ABI, not N-API). The package root is one level up from both src/ and dist/.
 */
function load (): Native {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..')
  const require = createRequire(import.meta.url)
  const tried: string[] = []
  const attempt = (file: string): Native | undefined => {
    if (!existsSync(file)) {
      tried.push(`${file}: not found`)
      return undefined
    }
    try {
      return require(file) as Native
    } catch (err) {
      tried.push(`${file}: ${(err as Error).message.split('\n')[0]}`)
      return undefined
    }
  }
  const found = attempt(join(root, 'build/Release/pagegift.node')) ?? attempt(join(root, 'build/Debug/pagegift.node')) ?? attempt(join(root, prebuildPath()))
  if (found !== undefined) return found
  const err = new Error(`pagegift: no native addon for ${process.platform}-${process.arch}, Node ${process.version} (ABI ${process.versions.modules}). ` +
    `Build one with \`npm rebuild pagegift\` (needs a C compiler, make, python3 and Node's headers).\nTried:\n  ${tried.join('\n  ')}`)
  Object.assign(err, { code: 'ERR_PAGEGIFT_NATIVE_MISSING' })
  throw err
}

export const native: Native = load()
