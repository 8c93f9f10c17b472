/**
 * The per-service handoff key: 32 random bytes (hex) in an owner-only file beside the handoff socket
 * (`<socket>.key`, mode 0600). A successor presents it in HELLO; `join()` on the same socket path and
 * `pagegift upgrade` read it. Same-uid processes are trusted (they could ptrace the service anyway):
 * the key keeps a stray process that happens to speak the protocol from pausing the service, it is
 * not a defence against a hostile process of the same user.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { lstatSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { PagegiftError } from '../errors.ts'

const KEY_RE = /^[0-9a-f]{64}$/

export const keyPath = (socketPath: string): string => `${socketPath}.key`

const keyError = (why: string): PagegiftError => new PagegiftError('ERR_PAGEGIFT_HANDOFF_KEY', why)

/** The service's key, or null if it has none yet. A file that is not ours alone is an error, never used. */
export function readKey (socketPath: string): string | null {
  const file = keyPath(socketPath)
  let st
  try {
    st = lstatSync(file)
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return null
    throw err
  }
  if (!st.isFile()) throw keyError(`the handoff key ${file} is not a regular file`)
  if (st.uid !== process.getuid?.()) throw keyError(`the handoff key ${file} belongs to uid ${st.uid}, not to us`)
  if ((st.mode & 0o077) !== 0) throw keyError(`the handoff key ${file} has mode ${(st.mode & 0o777).toString(8)}: it must be readable by its owner only (0600)`)
  const key = readFileSync(file, 'utf8').trim()
  if (!KEY_RE.test(key)) throw keyError(`the handoff key ${file} is not 64 hex digits`)
  return key
}

/** The service's key, created (0600, atomically) if it has none. */
export function ensureKey (socketPath: string): string {
  const existing = readKey(socketPath)
  if (existing !== null) return existing
  const key = randomBytes(32).toString('hex')
  const tmp = `${keyPath(socketPath)}.${process.pid}.tmp`
  try {
    writeFileSync(tmp, key + '\n', { mode: 0o600, flag: 'wx' })
    renameSync(tmp, keyPath(socketPath))
  } finally {
    rmSync(tmp, { force: true })
  }
  return key
}

/** Constant-time comparison of a presented key with ours. */
export function keyMatches (ours: string, presented: string | undefined): boolean {
  if (ours === '' || presented === undefined || presented.length !== ours.length) return false
  return timingSafeEqual(Buffer.from(ours), Buffer.from(presented))
}
