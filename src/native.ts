/** Loads the C addon and types its exports. Every call returns >= 0 or -errno unless noted. */
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** An opaque handle to a mapping made by `map`. */
export interface MappingHandle { readonly __mapping: unique symbol }
/** An opaque handle to a uv_poll watcher. */
export interface PollHandle { readonly __poll: unique symbol }

/** Numbers C, libuv and the kernel define, read from the addon rather than copied by hand. */
export interface Constants {
  EAGAIN: number
  EPIPE: number
  ECONNREFUSED: number
  EINVAL: number
  EBUSY: number
  UV_READABLE: number
  UV_WRITABLE: number
  UV_DISCONNECT: number
  MSG_TRUNC: number
  MSG_CTRUNC: number
  SPLICE_F_GIFT: number
  F_SEAL_SEAL: number
  F_SEAL_SHRINK: number
  F_SEAL_GROW: number
  OP_VM_READ: number
  OP_VMSPLICE: number
  OP_READ: number
  OP_POPULATE: number
}

/**
 * Memory an async job may read or write: a mapping handle, an ArrayBuffer or a view, with an offset
 * and a length inside it. C resolves the address, checks the bounds and holds the memory until the
 * job settles: no local address ever crosses the native boundary as a number.
 */
export type Span = [memory: MappingHandle | ArrayBuffer | ArrayBufferView, offset: number, length: number]

export interface Native {
  pageSize(): number
  memfdCreate(name: string, size: number, seal: boolean): number
  getSeals(fd: number): number
  fdSize(fd: number): number
  dup(fd: number): number
  close(fd: number): number
  setPtracer(pid: number): number
  punchHole(fd: number, offset: number, length: number): number
  map(fd: number, offset: number, length: number, byteLength: number, slot?: boolean): [ArrayBuffer, MappingHandle] | number
  mapFixed(handle: MappingHandle, at: number, fd: number, fdOffset: number, length: number): number
  detach(ab: ArrayBuffer): void
  /** Takes a mapping's pages from its (detached) ArrayBuffer to a new handle; -EBUSY while a job uses them. */
  handover(handle: MappingHandle): MappingHandle | number
  /** The one new ArrayBuffer over a handed-over mapping; the bytes past byteLength are zeroed. */
  wrap(handle: MappingHandle, byteLength: number): ArrayBuffer | number
  /** Where spans live, as [address, length] pairs: only to describe them to a cma reader. */
  addresses(spans: Array<Span[number]>): number[]
  seqpacketPair(): [number, number, number] | number
  /** A non-blocking pipe: [readFd, writeFd, capacity] or -errno. */
  pipe(size: number): [number, number, number] | number
  /** Checks that a received fd is a pipe and makes it non-blocking. */
  pipeReader(fd: number): number
  listen(path: string, backlog: number): number
  connect(path: string): number
  accept(fd: number): number
  peerCred(fd: number): [number, number, number] | number
  sendmsg(fd: number, views: ArrayBufferView[], fds: number[]): number
  recvmsg(fd: number, buf: Uint8Array, out: Int32Array): number
  /**
   * One job on the threadpool: op OP_VM_READ (pid, 0, local spans, the peer's address/length pairs),
   * OP_VMSPLICE (fd, flags, spans) or OP_READ (fd, 0, spans); the pipe ops make one non-blocking pass.
   * OP_POPULATE (0, 0, spans of mappings): maps the page tables of their resident pages.
   */
  async(op: number, a0: number, a1: number, spans: Array<Span[number]>, remote: Float64Array | null): Promise<number>
  unmapAsync(handle: MappingHandle): void
  /** Watches `events` (libuv's UV_READABLE | UV_WRITABLE | UV_DISCONNECT) on fd; 0 starts it idle. */
  pollStart(fd: number, events: number, cb: (status: number, events: number) => void): PollHandle | number
  pollUpdate(handle: PollHandle, events: number): void
  pollClose(handle: PollHandle): void
  /** A reactor's epoll set (native/binding_rx.c), watched with pollStart; an fd or -errno. */
  rxOpen(): number
  /**
   * Reads every ready socket of the set once into `buffer`; returns how many rows of `table` it
   * filled, each [fd, offset, n] (n bytes at offset, 0 at EOF, -errno).
   */
  rxRead(ep: number, buffer: Uint8Array, table: Int32Array): number
  /** Registers a dup of fd; returns the dup (the reactor's fd for this socket) or -errno. */
  rxAdd(ep: number, fd: number): number
  rxWatch(ep: number, fd: number, on: boolean): number
  /** Unregisters and closes the reactor's fd. */
  rxDel(ep: number, fd: number): number
  /** A non-blocking send on a socket: bytes taken or -errno (never SIGPIPE). */
  rxSend(fd: number, data: ArrayBufferView, start?: number, end?: number): number
  constants: Constants
  /** One systemd notify datagram to `path` ('@' = abstract); bytes sent or -errno. */
  sdNotify(path: string, message: string): number
  /** Makes thread `tid` SCHED_IDLE (it runs only where a CPU has nothing else): 0 or -errno. */
  schedIdle(tid: number): number
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

export const { MSG_TRUNC, MSG_CTRUNC, SPLICE_F_GIFT, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW } = native.constants
/** Negative errno values as the addon returns them. */
export const errno = {
  EAGAIN: -native.constants.EAGAIN,
  EPIPE: -native.constants.EPIPE,
  ECONNREFUSED: -native.constants.ECONNREFUSED,
  EINVAL: -native.constants.EINVAL,
  EBUSY: -native.constants.EBUSY,
}
export const PollEvents = {
  Readable: native.constants.UV_READABLE,
  Writable: native.constants.UV_WRITABLE,
  Disconnect: native.constants.UV_DISCONNECT,
}
export const AsyncOp = {
  VmRead: native.constants.OP_VM_READ,
  Vmsplice: native.constants.OP_VMSPLICE,
  Read: native.constants.OP_READ,
  Populate: native.constants.OP_POPULATE,
}

/** Flattens spans into the [memory, offset, length, ...] list the addon takes. */
export function flatSpans (spans: Span[]): Array<Span[number]> {
  return spans.flat()
}
