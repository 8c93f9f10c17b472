/** Loads the C addon and types its exports. Every call returns >= 0 or -errno unless noted. */
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
  map(fd: number, offset: number, length: number, byteLength: number): [ArrayBuffer, MappingHandle] | number
  mapFixed(handle: MappingHandle, at: number, fd: number, fdOffset: number, length: number): number
  detach(ab: ArrayBuffer): void
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
   */
  async(op: number, a0: number, a1: number, spans: Array<Span[number]>, remote: Float64Array | null): Promise<number>
  unmapAsync(handle: MappingHandle): void
  /** Watches `events` (libuv's UV_READABLE | UV_WRITABLE | UV_DISCONNECT) on fd; 0 starts it idle. */
  pollStart(fd: number, events: number, cb: (status: number, events: number) => void): PollHandle | number
  pollUpdate(handle: PollHandle, events: number): void
  pollClose(handle: PollHandle): void
  constants: Constants
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

export const { MSG_TRUNC, MSG_CTRUNC, SPLICE_F_GIFT, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW } = native.constants
/** Negative errno values as the addon returns them. */
export const errno = {
  EAGAIN: -native.constants.EAGAIN,
  EPIPE: -native.constants.EPIPE,
  ECONNREFUSED: -native.constants.ECONNREFUSED,
  EINVAL: -native.constants.EINVAL,
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
}

/** Flattens spans into the [memory, offset, length, ...] list the addon takes. */
export function flatSpans (spans: Span[]): Array<Span[number]> {
  return spans.flat()
}
