/**
 * The channel's message format. Every message is one SOCK_SEQPACKET packet:
 * a 24-byte header, a JSON part, then optional raw bytes; fds ride along as SCM_RIGHTS.
 */
import { PagegiftError } from './errors.ts'
import { Validator } from './validate.ts'

export const MAGIC = 0x54464750 // "PGFT"
export const VERSION = 1
export const HEADER_BYTES = 24
export const MAX_JSON = 64 * 1024
export const MAX_DATA = 64 * 1024
export const MAX_FDS = 64
export const MAX_MESSAGE = HEADER_BYTES + MAX_JSON + MAX_DATA
/**
 * Gifts of at most INLINE_MAX bytes (not forced to a path) travel inline: one message, no reply.
 * Chosen from `npm run bench -- transfer` (the crossover in docs/transfer.md): since the small-gift
 * path lost its per-gift promises, memory whose pages could move is faster inline than moved up to
 * what one message carries too (64 KiB: 182 us inline against 331 us for a forced move, same run),
 * so INLINE_MAX_PAGES is that limit as well; other memory would next take cma, a round trip more.
 */
export const INLINE_MAX = MAX_DATA
export const INLINE_MAX_PAGES = 64 * 1024
/**
 * Memory whose pages cannot move (a plain Buffer) goes inline up to this size too, in two messages:
 * the offer with the first MAX_DATA bytes, then a Data message with the rest, back to back and with
 * nothing between them, still with no reply. Its next path, cma, costs a round trip and two
 * threadpool hops. Measured in one run each way against cma into new memory (`npm run bench --
 * transfer --sizes=96K,128K,256K --paths`, two runs): 96 KiB 233/338 us inline against 366/542 us;
 * 128 KiB 269/387 against 457/585 us; 256 KiB (four messages) 573/738 against 466/673 us, because a
 * packet socket holds about three such messages (its sender's buffer) and each wait for room is a
 * wake-up on both sides.
 */
export const INLINE_CHUNKED_MAX = 128 * 1024

export const enum Type {
  Offer = 1, // writer -> reader: a gift, with its fds (move) and addresses (cma)
  Done = 2, // reader -> writer: delivered, by this path
  Need = 3, // reader -> writer: send it by this fallback path
  Splice = 4, // writer -> reader: the read end of a pipe the writer vmsplices into
  Data = 5, // writer -> reader: a chunk of a copied gift
  Fail = 6, // either way: this gift failed
  Message = 7, // a control message of send()/recv()
  Cma = 8, // writer -> reader: the addresses to process_vm_readv from
  Skip = 9, // writer -> reader: this path is not available here, try the next one
  Inline = 10, // writer -> reader: a whole small gift, its bytes in this one message; no reply
  Batch = 11, // writer -> reader: several inline gifts given in one turn, their bytes one after another; no reply
}

/** The most inline gifts one Batch message may carry. */
export const MAX_BATCH = 256

export interface Decoded { type: Type, json: unknown, data: Uint8Array }

const decoder = new TextDecoder('utf-8', { fatal: true })

export function protocolError (message: string): PagegiftError {
  return new PagegiftError('ERR_PAGEGIFT_PROTOCOL', `Malformed message from peer: ${message}`)
}

/** Encodes the header and JSON part; raw data is sent as a second iovec. */
export function encode (type: Type, json: unknown, dataLength: number, nfds: number): Uint8Array {
  return encodeText(type, JSON.stringify(json) ?? 'null', dataLength, nfds)
}

/** As encode(), with the JSON part already serialised (the caller vouches that `text` is JSON). */
export function encodeText (type: Type, text: string, dataLength: number, nfds: number): Uint8Array {
  const jsonLength = Buffer.byteLength(text)
  if (jsonLength > MAX_JSON) throw new PagegiftError('ERR_PAGEGIFT_MESSAGE_TOO_LARGE', `Message JSON is ${jsonLength} bytes; the limit is ${MAX_JSON}`)
  if (dataLength > MAX_DATA || nfds > MAX_FDS) throw new PagegiftError('ERR_PAGEGIFT_MESSAGE_TOO_LARGE', `Message carries ${dataLength} bytes and ${nfds} fds; the limits are ${MAX_DATA} and ${MAX_FDS}`)
  // From Node's pool when small: one allocation, written in place; the kernel copies it at sendmsg.
  const out = Buffer.allocUnsafe(HEADER_BYTES + jsonLength)
  out.writeUInt32LE(MAGIC, 0)
  out.writeUInt16LE(VERSION, 4)
  out.writeUInt16LE(type, 6)
  out.writeUInt32LE(jsonLength, 8)
  out.writeUInt32LE(dataLength, 12)
  out.writeUInt16LE(nfds, 16)
  out.fill(0, 18, HEADER_BYTES)
  out.write(text, HEADER_BYTES)
  return out
}

const utf8Slice = Buffer.prototype.utf8Slice as (this: Uint8Array, start: number, end: number) => string

/**
 * The text of bytes [start, end), which must be valid UTF-8. Node's utf8Slice is twice as fast as a
 * fatal TextDecoder but replaces bad bytes with U+FFFD; only text that holds one is decoded again,
 * strictly, to tell a U+FFFD that was sent from bytes that are not UTF-8.
 */
function utf8 (buf: Uint8Array, start: number, end: number): string {
  const text = utf8Slice.call(buf, start, end)
  return text.includes('\uFFFD') ? decoder.decode(buf.subarray(start, end)) : text
}

/** Decodes and checks one received packet of `n` bytes carrying `nfds` fds; throws a protocol error. */
export function decode (buf: Uint8Array, n: number, nfds: number): Decoded {
  if (n < HEADER_BYTES) throw protocolError(`packet of ${n} bytes is shorter than the header`)
  const v = new DataView(buf.buffer, buf.byteOffset, n)
  if (v.getUint32(0, true) !== MAGIC) throw protocolError('bad magic')
  const version = v.getUint16(4, true)
  if (version !== VERSION) {
    throw new PagegiftError('ERR_PAGEGIFT_VERSION', `Peer speaks protocol version ${version}; this side speaks ${VERSION}`)
  }
  const type = v.getUint16(6, true)
  if (type < Type.Offer || type > Type.Batch) throw protocolError(`unknown message type ${type}`)
  const jsonLength = v.getUint32(8, true)
  const dataLength = v.getUint32(12, true)
  if (jsonLength > MAX_JSON || dataLength > MAX_DATA) throw protocolError('length over the limit')
  if (HEADER_BYTES + jsonLength + dataLength !== n) throw protocolError(`lengths say ${HEADER_BYTES + jsonLength + dataLength} bytes, packet has ${n}`)
  if (v.getUint16(16, true) !== nfds) throw protocolError(`header says ${v.getUint16(16, true)} fds, ${nfds} arrived`)
  let json: unknown
  try {
    json = JSON.parse(utf8(buf, HEADER_BYTES, HEADER_BYTES + jsonLength))
  } catch {
    throw protocolError('JSON part does not parse')
  }
  return { type: type as Type, json, data: buf.subarray(HEADER_BYTES + jsonLength, n) }
}

/** The gift wire's validator: a bad field is an ERR_PAGEGIFT_PROTOCOL error that names it. */
export const wireCheck = new Validator(protocolError)

export const obj = wireCheck.obj.bind(wireCheck)
export const uint = wireCheck.uint.bind(wireCheck)
export const str = wireCheck.str.bind(wireCheck)
export const uints = wireCheck.uints.bind(wireCheck)
