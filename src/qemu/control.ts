/**
 * The keeper's control socket: one JSON request line, one JSON reply line, then the connection
 * closes. The socket file is 0600 in a 0700 directory, so only the VM's owner (or root) can connect
 * and upgrade or stop the VM.
 */
import { chmodSync, lstatSync, rmSync } from 'node:fs'
import { createServer, connect as netConnect, type Server } from 'node:net'
import { Validator } from '../validate.ts'
import { QemuError, type QemuErrorCode } from './errors.ts'

/** The control protocol's validator: a bad field is an ERR_QEMU_CONTROL error that names it. */
const check = new Validator((why) => new QemuError('ERR_QEMU_CONTROL', `control protocol: ${why}`))

const OPS = ['status', 'prepare', 'upgrade', 'stop'] as const
const CODES: readonly QemuErrorCode[] = [
  'ERR_QEMU_NOT_FOUND', 'ERR_QEMU_TOO_OLD', 'ERR_QEMU_START_FAILED', 'ERR_QEMU_EXITED', 'ERR_QEMU_MEMORY_SIZE', 'ERR_QEMU_UPGRADE_FAILED',
  'ERR_QEMU_VM_EXISTS', 'ERR_QEMU_VM_NOT_FOUND', 'ERR_QEMU_BUSY', 'ERR_QEMU_CONTROL', 'ERR_QEMU_KEEPER_MOVED', 'ERR_QEMU_PREPARED_MISMATCH',
  'ERR_QMP_TIMEOUT', 'ERR_QMP_CLOSED', 'ERR_QMP_PROTOCOL', 'ERR_QMP_COMMAND',
]

export type ControlOp = typeof OPS[number]
/** `cancel` (with 'prepare') drops the prepared destination instead of starting one. */
export interface ControlRequest { op: ControlOp, qemu?: string, timeoutMs?: number, cancel?: boolean }
export type ControlReply = { ok: true, result: unknown } | { ok: false, error: { code: string, message: string, rolledBack?: boolean } }

const MAX_REQUEST_BYTES = 64 * 1024

/** Validates a request line's JSON. */
export function parseRequest (x: unknown): ControlRequest {
  const o = check.obj(x, 'request')
  const req: ControlRequest = { op: check.oneOf(o.op, 'op', OPS) }
  if (o.qemu !== undefined) req.qemu = check.str(o.qemu, 'qemu', 4096)
  if (o.timeoutMs !== undefined) req.timeoutMs = check.int(o.timeoutMs, 'timeoutMs', 1, 2 ** 31 - 1)
  if (o.cancel !== undefined) req.cancel = check.bool(o.cancel, 'cancel')
  return req
}

/** Validates a reply line's JSON; a keeper error keeps its code only if it is one of ours. */
export function parseReply (x: unknown): ControlReply {
  const o = check.obj(x, 'reply')
  if (check.bool(o.ok, 'ok')) return { ok: true, result: o.result }
  const e = check.obj(o.error, 'error')
  const code = check.str(e.code, 'error.code', 64)
  return {
    ok: false,
    error: {
      code: (CODES as readonly string[]).includes(code) ? code : 'ERR_QEMU_CONTROL',
      message: check.str(e.message, 'error.message', MAX_REQUEST_BYTES),
      ...(e.rolledBack !== undefined ? { rolledBack: check.bool(e.rolledBack, 'error.rolledBack') } : {}),
    },
  }
}

/**
 * Removes a stale socket file at `path` (a successor keeper replaces its predecessor's), and
 * refuses anything else there: a regular file, a directory, or another user's socket.
 */
function clearSocketPath (path: string): void {
  let st
  try {
    st = lstatSync(path)
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return
    throw err
  }
  if (!st.isSocket()) throw new QemuError('ERR_QEMU_CONTROL', `cannot listen on ${path}: it exists and is not a socket (left alone)`)
  if (st.uid !== process.getuid?.()) throw new QemuError('ERR_QEMU_CONTROL', `cannot listen on ${path}: the socket there belongs to uid ${st.uid} (left alone)`)
  rmSync(path, { force: true })
}

/**
 * Serves requests on `path`, replacing a socket file there (a successor keeper replaces its
 * predecessor's) but nothing else; `handle` runs one request at a time per connection.
 */
export async function serveControl (path: string, handle: (req: ControlRequest) => Promise<unknown>): Promise<Server> {
  const server = createServer((conn) => {
    let buffered = ''
    conn.setEncoding('utf8')
    conn.on('error', () => {})
    conn.on('data', (chunk: string) => {
      buffered += chunk
      if (buffered.length > MAX_REQUEST_BYTES) { conn.destroy(); return }
      const nl = buffered.indexOf('\n')
      if (nl < 0) return
      conn.pause()
      void answer(buffered.slice(0, nl), handle).then((reply) => conn.end(JSON.stringify(reply) + '\n'))
    })
  })
  clearSocketPath(path)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => { server.off('error', reject); resolve() })
  })
  chmodSync(path, 0o600)
  return server
}

async function answer (line: string, handle: (req: ControlRequest) => Promise<unknown>): Promise<ControlReply> {
  try {
    const req = parseRequest(check.json(line, 'request'))
    return { ok: true, result: await handle(req) }
  } catch (err) {
    const e = err as Error & { code?: string, rolledBack?: boolean }
    const message = e.cause instanceof Error && !e.message.includes(e.cause.message) ? `${e.message}: ${e.cause.message}` : e.message
    return { ok: false, error: { code: e.code ?? 'ERR_QEMU_CONTROL', message, ...(e.rolledBack !== undefined ? { rolledBack: e.rolledBack } : {}) } }
  }
}

/** While a keeper hands over to a new one, the socket briefly answers 'moved' or is missing. */
const RETRY_CODES = new Set(['ERR_QEMU_KEEPER_MOVED', 'ERR_QEMU_VM_NOT_FOUND'])
const RETRY_FOR_MS = 1000

/**
 * Sends one request to the keeper at `path` and returns its result; keeper errors are rethrown.
 * A request that meets a keeper handover is retried for up to a second.
 */
export async function request<T> (path: string, req: ControlRequest, timeoutMs: number): Promise<T> {
  const retryUntil = Date.now() + RETRY_FOR_MS
  while (true) {
    try {
      return await requestOnce<T>(path, req, timeoutMs)
    } catch (err) {
      if (!(err instanceof QemuError) || !RETRY_CODES.has(err.code) || Date.now() > retryUntil) throw err
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

async function requestOnce<T> (path: string, req: ControlRequest, timeoutMs: number): Promise<T> {
  const line = await new Promise<string>((resolve, reject) => {
    const conn = netConnect({ path })
    let buffered = ''
    const timer = setTimeout(() => {
      conn.destroy()
      reject(new QemuError('ERR_QMP_TIMEOUT', `the keeper at ${path} did not answer '${req.op}' within ${timeoutMs} ms`))
    }, timeoutMs)
    conn.setEncoding('utf8')
    conn.on('connect', () => conn.write(JSON.stringify(req) + '\n'))
    conn.on('data', (chunk: string) => { buffered += chunk })
    conn.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      const missing = err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
      reject(new QemuError(missing ? 'ERR_QEMU_VM_NOT_FOUND' : 'ERR_QEMU_CONTROL', missing ? `no keeper is listening at ${path}` : `control socket ${path}: ${err.message}`, { cause: err }))
    })
    conn.on('close', () => { clearTimeout(timer); resolve(buffered) })
  })
  if (line === '') throw new QemuError('ERR_QEMU_CONTROL', `the keeper at ${path} closed the connection without a reply`)
  const reply = parseReply(check.json(line.trim(), `the reply of the keeper at ${path}`))
  if (!reply.ok) {
    throw new QemuError(reply.error.code as QemuErrorCode, reply.error.message, reply.error.rolledBack !== undefined ? { rolledBack: reply.error.rolledBack } : {})
  }
  return reply.result as T
}
