/**
 * systemd's notify protocol (sd_notify(3)): when the service runs under systemd with Type=notify,
 * $NOTIFY_SOCKET names an AF_UNIX datagram socket. Each generation says READY=1 once it serves,
 * with MAINPID= its own pid, so that after `ExecReload=pagegift upgrade ...` systemd follows the
 * successor as the service's main process (this needs NotifyAccess=all: the successor is not the
 * main process yet when it speaks).
 */
import { native } from '../native.ts'
import { SystemError } from '../errors.ts'

/**
 * Sends `state` (newline-separated `KEY=value` lines) to $NOTIFY_SOCKET. Returns false when the
 * variable is not set (not under systemd); a failed send is an Error with `code` and `errno`.
 */
export function notifySystemd (state: string): boolean {
  if (typeof state !== 'string' || state.length === 0 || Buffer.byteLength(state) >= 4096) throw new TypeError('The "state" argument must be a non-empty string under 4096 bytes')
  const path = process.env.NOTIFY_SOCKET
  if (path === undefined || path === '') return false
  if (Buffer.byteLength(path) > 107) throw new RangeError(`NOTIFY_SOCKET is longer than a Unix socket path may be (107 bytes): ${path}`)
  const n = native.sdNotify(path, state)
  if (n < 0) throw new SystemError(n, 'sendto', path)
  return true
}
