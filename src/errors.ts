/** Errors shaped like Node's own: a stable `code`, and `errno`/`syscall` for system errors. */
import { getSystemErrorName } from 'node:util'

/** An error of pagegift's own, identified by `code` (for example `ERR_PAGEGIFT_PEER_CLOSED`). */
export class PagegiftError extends Error {
  readonly code: string
  /** Data a failed gift could not deliver, handed back so that nothing is lost. */
  buffers?: ArrayBuffer[]
  constructor (code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'PagegiftError'
    this.code = code
  }
}

/** A failed system call: `code` is the errno name (`EPERM`), `errno` is negative as in Node (`-1`). */
export class SystemError extends Error {
  readonly code: string
  readonly errno: number
  readonly syscall: string
  readonly path?: string
  constructor (errno: number, syscall: string, path?: string, detail?: string) {
    const code = errno < 0 ? getSystemErrorName(errno) : 'UNKNOWN'
    super(`${syscall} failed: ${code}${path !== undefined ? ` '${path}'` : ''}${detail !== undefined ? ` (${detail})` : ''}`)
    this.name = 'SystemError'
    this.code = code
    this.errno = errno
    this.syscall = syscall
    if (path !== undefined) this.path = path
  }
}

/** Returns `result` when it is >= 0; throws a SystemError for a negative errno. */
export function check (result: number, syscall: string, path?: string): number {
  if (result < 0) throw new SystemError(result, syscall, path)
  return result
}
