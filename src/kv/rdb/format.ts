/** RDB constants (Redis's rdb.h) and the values the reader produces and the writer takes. */

/** Redis 7.0 writes version 10; 7.2 writes 11, which only adds encodings this reader knows. */
export const RDB_WRITE_VERSION = 10
export const RDB_MAX_READ_VERSION = 11

export const T = {
  STRING: 0,
  LIST: 1,
  SET: 2,
  ZSET: 3,
  HASH: 4,
  ZSET_2: 5,
  MODULE_PRE_GA: 6,
  MODULE_2: 7,
  HASH_ZIPMAP: 9,
  LIST_ZIPLIST: 10,
  SET_INTSET: 11,
  ZSET_ZIPLIST: 12,
  HASH_ZIPLIST: 13,
  LIST_QUICKLIST: 14,
  STREAM_LISTPACKS: 15,
  HASH_LISTPACK: 16,
  ZSET_LISTPACK: 17,
  LIST_QUICKLIST_2: 18,
  STREAM_LISTPACKS_2: 19,
  SET_LISTPACK: 20,
  STREAM_LISTPACKS_3: 21
} as const

export const OP = {
  SLOT_INFO: 244,
  FUNCTION2: 245,
  FUNCTION_PRE_GA: 246,
  MODULE_AUX: 247,
  IDLE: 248,
  FREQ: 249,
  AUX: 250,
  RESIZEDB: 251,
  EXPIRETIME_MS: 252,
  EXPIRETIME: 253,
  SELECTDB: 254,
  EOF: 255
} as const

/** Quicklist 2 node containers. */
export const QUICKLIST_PLAIN = 1
export const QUICKLIST_PACKED = 2

/** The logical types, with the low-byte tag pagegift-kv's records use (RDB's plain type numbers). */
export type RdbValue =
  | { type: 'string', value: Buffer }
  | { type: 'list', value: Buffer[] }
  | { type: 'set', value: Buffer[] }
  /** Members with their scores, in any order. */
  | { type: 'zset', value: Array<[Buffer, number]> }
  | { type: 'hash', value: Array<[Buffer, Buffer]> }

export type RdbTypeName = RdbValue['type']

export const TYPE_TAG: Record<RdbTypeName, number> = { string: 0, list: 1, set: 2, zset: 3, hash: 4 }

export interface RdbKey {
  db: number
  key: Buffer
  /** Unix time in ms, 0 for none. */
  expireAt: number
  value: RdbValue
}

/** What Redis's own RDB names these thresholds; the writer picks compact encodings under them, as Redis 7.0 would. */
export const COMPACT = {
  listpackEntries: 128,
  listpackValue: 64,
  intsetEntries: 512,
  /** Bytes per quicklist node (Redis's list-max-listpack-size -2). */
  quicklistNodeBytes: 8192
}
