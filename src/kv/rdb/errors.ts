/**
 * RDB errors: one `Error` class of codes, so that a caller (start-up, a test) can tell a truncated
 * file from a corrupt one without parsing messages. Every failure of the reader is one of these.
 */
import { Validator } from '../../validate.ts'

export type RdbErrorCode =
  | 'ERR_RDB_BAD_MAGIC' // not an RDB file
  | 'ERR_RDB_VERSION' // an RDB version this reader does not know
  | 'ERR_RDB_TRUNCATED' // the file ends before its EOF opcode and checksum
  | 'ERR_RDB_CHECKSUM' // the CRC64 at the end does not match the contents
  | 'ERR_RDB_BAD_TYPE' // an unknown value type or opcode byte
  | 'ERR_RDB_UNSUPPORTED' // a valid Redis type pagegift-kv does not store (streams, modules)
  | 'ERR_RDB_CORRUPT' // a length, encoding or packed structure that cannot be right
  | 'ERR_RDB_TRAILING' // bytes after the checksum
  | 'ERR_RDB_DB_RANGE' // a database number the store does not have
  | 'ERR_RDB_DUPLICATE_KEY' // the same key twice in one database
  | 'ERR_RDB_OOM' // the data does not fit maxmemory
  | 'ERR_RDB_TOO_BIG' // a DUMP payload whose value would take more memory than RESTORE allows

export interface RdbError extends Error { code: RdbErrorCode, offset?: number }

/** An RDB error; `offset` is the file offset where the reader noticed, when known. */
export function rdbError (code: RdbErrorCode, why: string, offset?: number): RdbError {
  const where = offset === undefined ? '' : ` (at byte ${offset})`
  const err = new Error(`rdb: ${why}${where}`) as RdbError
  err.code = code
  if (offset !== undefined) err.offset = offset
  return err
}

/** The validator for packed structures inside values (ziplists, listpacks, intsets). */
export const packedValidator = new Validator((why) => rdbError('ERR_RDB_CORRUPT', why))
