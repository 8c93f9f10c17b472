/**
 * Errors of the QEMU live-update layer. Each carries a stable `code` that a user or a script can
 * act on, in the same style as Node's system errors (`err.code === 'ERR_QMP_TIMEOUT'`).
 */
export type QemuErrorCode =
  | 'ERR_QEMU_NOT_FOUND'
  | 'ERR_QEMU_TOO_OLD'
  | 'ERR_QEMU_START_FAILED'
  | 'ERR_QEMU_EXITED'
  | 'ERR_QEMU_MEMORY_SIZE'
  | 'ERR_QEMU_UPGRADE_FAILED'
  | 'ERR_QEMU_VM_EXISTS'
  | 'ERR_QEMU_VM_NOT_FOUND'
  | 'ERR_QEMU_BUSY'
  | 'ERR_QEMU_CONTROL'
  | 'ERR_QEMU_KEEPER_MOVED'
  | 'ERR_QEMU_PREPARED_MISMATCH'
  | 'ERR_QEMU_UNSAFE_DIR'
  | 'ERR_QMP_TIMEOUT'
  | 'ERR_QMP_CLOSED'
  | 'ERR_QMP_PROTOCOL'
  | 'ERR_QMP_COMMAND'

export class QemuError extends Error {
  readonly code: QemuErrorCode
  /** For ERR_QMP_COMMAND: the QMP error class, such as 'GenericError' or 'CommandNotFound'. */
  readonly qmpClass?: string
  /** For ERR_QEMU_UPGRADE_FAILED: whether the source QEMU was confirmed running the guest again. */
  readonly rolledBack?: boolean

  constructor (code: QemuErrorCode, message: string, extra: { cause?: unknown, qmpClass?: string, rolledBack?: boolean } = {}) {
    super(message, extra.cause !== undefined ? { cause: extra.cause } : undefined)
    this.name = 'QemuError'
    this.code = code
    if (extra.qmpClass !== undefined) this.qmpClass = extra.qmpClass
    if (extra.rolledBack !== undefined) this.rolledBack = extra.rolledBack
  }
}

/** Whether `err` is a QemuError with the given code. */
export function isQemuError (err: unknown, code?: QemuErrorCode): err is QemuError {
  return err instanceof QemuError && (code === undefined || err.code === code)
}
