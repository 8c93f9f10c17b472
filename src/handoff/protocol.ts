/**
 * Handoff protocol messages (JSON control messages on a Channel) and their validation. Every message
 * from a peer goes through `parse*` before use: a hostile or broken peer can at worst fail its own
 * handoff, so anything unexpected becomes a PagegiftError with code ERR_PAGEGIFT_HANDOFF_PROTOCOL.
 */
import { PagegiftError } from '../errors.ts'
import { Validator } from '../validate.ts'
import { COMMIT_MARKS, SERVING_MARKS, type Marks } from './phases.ts'
import type { HandoffRecord, StatusReport, WatchEvent } from './types.ts'

/**
 * The newest protocol version this build speaks. Version 1 is the previous release's; version 2 adds
 * the per-service key, region layout versions, SERVING before the gate opens and the draining of
 * connections whose output was still queued. Version 3 adds connections offered with the regions,
 * before the pause (the successor wraps them while we serve), which STATE then names as `offered`
 * instead of sending their fds again. Every first message is a version-1 envelope that names
 * the newest version its sender speaks in `max`; the answer comes in the version both speak, and so
 * does every later message on that channel.
 */
export const PROTOCOL_VERSION = 3
export const MIN_PROTOCOL_VERSION = 1
/** Hard limits on what a peer may claim. */
export const LIMITS = { regions: 256, handles: 4096, fds: 8192, pendingBytes: 4 << 20, history: 32, name: 256, extents: 4096 }

export interface HelloMsg { t: 'hello', v: number, pid: number, version: string, max?: number, key?: string }
export interface RequestMsg<T extends 'status' | 'watch'> { t: T, v: number, max?: number, key?: string }
export type FirstMsg = HelloMsg | RequestMsg<'status'> | RequestMsg<'watch'>

/**
 * Where a region's bytes are: `share` = these fds (by index into the message's fds) map the pages;
 * `offered` = the region of that name in the OFFER sent before quiescing; `gift` = chunks follow STATE.
 */
export interface RegionWire {
  name: string
  byteLength: number
  mode: 'share' | 'gift' | 'offered'
  extents: { fd: number, offset: number, length: number }[]
  /** The version of the region's layout, as the predecessor's app declared it (0: undeclared, and every v1 region). */
  layout: number
}
/**
 * Sent right after HELLO, before the predecessor quiesces: regions the successor may map while we
 * still serve, and (version 3) connections it may wrap, each a dup of the connection's fd (by index).
 */
export interface OfferMsg { t: 'offer', v: number, regions: RegionWire[], history: HandoffRecord[], sockets: SocketOfferWire[] }
export interface SocketOfferWire { name: string, fd: number }
/**
 * `draining`: the predecessor still flushes output it had queued; the successor holds its own writes until DRAINED.
 * `offered` (version 3, sockets only): the connection of that name in the OFFER; it has no fd here (`fd` is -1).
 */
export interface HandleWire { name: string, kind: 'server' | 'socket' | 'fd', fd: number, pending: string, info: Record<string, string | number>, draining?: boolean, offered?: boolean }
export interface StateMsg {
  t: 'state'
  v: number
  generation: number
  from: { pid: number, version: string, generation: number }
  stoppedAt: string
  regions: RegionWire[]
  handles: HandleWire[]
  meta: unknown
}
export interface RefusedMsg { t: 'refused', v: number, code: string, reason: string }
/** `marks`: the predecessor's clock marks so far (phases.ts), so the successor's record has the whole breakdown. */
export interface CommitMsg { t: 'commit', v: number, marks?: Record<string, string> }
export interface AbortMsg { t: 'abort', v: number, code: string, reason: string }
export interface ReadyMsg { t: 'ready', v: number }
/** The successor mapped the OFFER and is ready for the short critical section. */
export interface PreparedMsg { t: 'prepared', v: number }
/** `marks`: the successor's clock marks (phases.ts); an older successor sends none. */
export interface ServingMsg { t: 'serving', v: number, servingAt: string, marks?: Record<string, string> }
/** After SERVING: the predecessor flushed (ok) or gave up on (not ok) a draining connection's queued output. */
export interface DrainedMsg { t: 'drained', v: number, handle: string, ok: boolean }
export interface StatusMsg { t: 'status', v: number, status: StatusReport }
export interface EventMsg { t: 'event', v: number, event: WatchEvent }

export function protocolError (why: string): PagegiftError {
  return new PagegiftError('ERR_PAGEGIFT_HANDOFF_PROTOCOL', `handoff protocol: ${why}`)
}

/** The handoff's validator (src/validate.ts): a bad field is an ERR_PAGEGIFT_HANDOFF_PROTOCOL error that names it. */
export const check = new Validator(protocolError)

type Obj = Record<string, unknown>

const obj = (x: unknown, what: string): Obj => check.obj(x, what)
const int = (o: Obj, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number => check.int(o[key], `'${key}'`, min, max)
const str = (o: Obj, key: string, max = 4096): string => check.str(o[key], `'${key}'`, max)
const bigintString = (o: Obj, key: string): string => check.decimal(o[key], `'${key}'`)

/**
 * Checks the envelope: an object with a known type, at protocol version `v` (the one negotiated on
 * this channel), or at any version this side speaks when `v` is not known yet.
 */
function envelope (x: unknown, types: readonly string[], v?: number): Obj {
  const o = obj(x, 'message')
  if (typeof o.t !== 'string' || !types.includes(o.t)) check.fail(`unexpected message type ${JSON.stringify(o.t)} (want ${types.join(' | ')})`)
  const ok = v !== undefined ? o.v === v : typeof o.v === 'number' && Number.isInteger(o.v) && o.v >= MIN_PROTOCOL_VERSION && o.v <= PROTOCOL_VERSION
  if (!ok) {
    const speaks = v !== undefined ? `${v} on this channel` : `${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`
    throw new PagegiftError('ERR_PAGEGIFT_HANDOFF_VERSION', `handoff protocol version ${JSON.stringify(o.v)} is not supported (this side speaks ${speaks})`)
  }
  return o
}

/** The version two sides both speak, from the `max` of a first message (absent: a version-1 peer). */
export function negotiate (max: number | undefined): number {
  return Math.min(PROTOCOL_VERSION, max ?? MIN_PROTOCOL_VERSION)
}

/** The first message of a connection: a version-1 envelope, naming in `max` the newest version its sender speaks. */
export function parseFirst (x: unknown): FirstMsg {
  const o = envelope(x, ['hello', 'status', 'watch'], MIN_PROTOCOL_VERSION)
  const extra: { max?: number, key?: string } = {}
  if (o.max !== undefined) extra.max = int(o, 'max', MIN_PROTOCOL_VERSION, 1 << 16)
  if (o.key !== undefined) extra.key = str(o, 'key', 128)
  if (o.t === 'status') return { t: 'status', v: MIN_PROTOCOL_VERSION, ...extra }
  if (o.t === 'watch') return { t: 'watch', v: MIN_PROTOCOL_VERSION, ...extra }
  return { t: 'hello', v: MIN_PROTOCOL_VERSION, pid: int(o, 'pid', 1), version: str(o, 'version', LIMITS.name), ...extra }
}

function parseRegion (x: unknown, nfds: number): RegionWire {
  const o = obj(x, 'region')
  const mode = check.oneOf(o.mode, 'region mode', ['share', 'gift', 'offered'] as const)
  const byteLength = int(o, 'byteLength')
  let covered = 0
  const parsed = check.arr(o.extents, 'region extents', LIMITS.extents, (e, what) => {
    const eo = obj(e, what)
    const ext = { fd: int(eo, 'fd', 0, nfds - 1), offset: int(eo, 'offset'), length: int(eo, 'length', 1) }
    covered += ext.length
    return ext
  })
  if (mode === 'share' && (parsed.length === 0 || covered < byteLength)) check.fail('shared region extents do not cover its length')
  const layout = o.layout === undefined ? 0 : int(o, 'layout', 0, 2 ** 31 - 1)
  return { name: str(o, 'name', LIMITS.name), byteLength, mode, extents: parsed, layout }
}

/**
 * Checks that every fd index a message names has one owner. `claims` are [fd index, owner] pairs;
 * one owner may name an fd more than once (a region's extents may share one). `twice` words the error.
 */
function checkFdOwners (claims: Array<[number, string]>, twice: (fd: number, first: string, second: string) => string): void {
  const owner = new Map<number, string>()
  for (const [fd, who] of claims) {
    const first = owner.get(fd)
    if (first !== undefined && first !== who) check.fail(twice(fd, first, who))
    owner.set(fd, who)
  }
}

const regionFds = (regions: RegionWire[]): Array<[number, string]> => regions.flatMap((r) => r.extents.map((e): [number, string] => [e.fd, `region ${r.name}`]))

function parseHandle (x: unknown, nfds: number, v: number | undefined): HandleWire {
  const o = obj(x, 'handle')
  const kind = check.oneOf(o.kind, 'handle kind', ['server', 'socket', 'fd'] as const)
  const pending = str(o, 'pending', Math.ceil(LIMITS.pendingBytes * 4 / 3) + 4)
  const info = obj(o.info, 'handle info')
  for (const v of Object.values(info)) if (typeof v !== 'string' && typeof v !== 'number') check.fail('handle info values must be strings or numbers')
  const offered = o.offered !== undefined && check.bool(o.offered, "'offered'")
  if (offered && (v === undefined || v < 3)) check.fail('an offered handle needs protocol version 3')
  if (offered && kind !== 'socket') check.fail('only a socket can be offered')
  if (offered && o.fd !== undefined) check.fail('an offered handle has no fd')
  const h: HandleWire = { name: str(o, 'name', LIMITS.name), kind, fd: offered ? -1 : int(o, 'fd', 0, nfds - 1), pending, info: info as HandleWire['info'] }
  if (o.draining === true) h.draining = true
  if (offered) h.offered = true
  return h
}

/** Validates STATE against the number of fds that came with it: every fd index in range, and each owned by one region or handle. */
export function parseState (x: unknown, nfds: number, v?: number): StateMsg {
  const o = envelope(x, ['state'], v)
  const from = obj(o.from, 'from')
  const regions = check.arr(o.regions, 'regions', LIMITS.regions, (r) => parseRegion(r, nfds))
  const handles = check.arr(o.handles, 'handles', LIMITS.handles, (h) => parseHandle(h, nfds, v))
  const state: StateMsg = {
    t: 'state',
    v: o.v as number,
    generation: int(o, 'generation', 1),
    from: { pid: int(from, 'pid', 1), version: str(from, 'version', LIMITS.name), generation: int(from, 'generation', 1) },
    stoppedAt: bigintString(o, 'stoppedAt'),
    regions,
    handles,
    meta: o.meta,
  }
  const names = new Set<string>()
  for (const n of [...state.regions.map((r) => 'r:' + r.name), ...state.handles.map((h) => 'h:' + h.name)]) {
    if (names.has(n)) check.fail(`duplicate name ${n.slice(2)}`)
    names.add(n)
  }
  const handleFds = handles.filter((h) => h.offered !== true).map((h): [number, string] => [h.fd, `handle ${h.name}`])
  checkFdOwners([...regionFds(regions), ...handleFds], (fd, first, second) => `fd #${fd} claimed by both ${first} and ${second}`)
  return state
}

/**
 * Validates an OFFER: shared regions only, every fd index in range, no name twice, no fd given to
 * two regions; each offered socket (version 3) has an fd of its own, used by no region and no
 * other socket.
 */
export function parseOffer (x: unknown, nfds: number, v: number): OfferMsg {
  const o = envelope(x, ['offer'], v)
  const parsed = check.arr(o.regions, 'offered regions', LIMITS.regions, (r) => parseRegion(r, nfds))
  if (parsed.some((r) => r.mode !== 'share')) check.fail('an offered region must be shared')
  if (new Set(parsed.map((r) => r.name)).size !== parsed.length) check.fail('duplicate offered region')
  const history = check.arr(o.history ?? [], 'history', LIMITS.history, (h, what) => check.obj(h, what))
  if (v < 3 && o.sockets !== undefined) check.fail('offered sockets need protocol version 3')
  const sockets = check.arr(o.sockets ?? [], 'offered sockets', LIMITS.handles, (so, what) => {
    const s = obj(so, what)
    return { name: str(s, 'name', LIMITS.name), fd: int(s, 'fd', 0, nfds - 1) }
  })
  if (new Set(sockets.map((s) => s.name)).size !== sockets.length) check.fail('duplicate offered socket')
  checkFdOwners([...regionFds(parsed), ...sockets.map((s): [number, string] => [s.fd, `socket ${s.name}`])], (fd) => `fd #${fd} is offered twice`)
  return { t: 'offer', v, regions: parsed, history: history as unknown as HandoffRecord[], sockets }
}

/** The predecessor's answers to HELLO: an OFFER (optional), then STATE; or a refusal. `v`: the version they came in. */
export function parseHelloReply (x: unknown, v?: number): ({ t: 'refused' | 'abort', code: string, reason: string } | { t: 'state' | 'offer' }) & { v: number } {
  const o = envelope(x, ['offer', 'state', 'refused', 'abort'], v)
  if (o.t === 'refused' || o.t === 'abort') return { t: o.t, code: str(o, 'code', 64), reason: str(o, 'reason'), v: o.v as number }
  return { t: o.t as 'state' | 'offer', v: o.v as number }
}

export function parseCommitReply (x: unknown, v: number): (CommitMsg & { at: Partial<Marks> }) | AbortMsg {
  const o = envelope(x, ['commit', 'abort'], v)
  if (o.t === 'commit') return { t: 'commit', v, at: parseMarks(o.marks, COMMIT_MARKS) }
  return { t: 'abort', v, code: str(o, 'code', 64), reason: str(o, 'reason') }
}

export function parsePrepared (x: unknown, v: number): PreparedMsg {
  envelope(x, ['prepared'], v)
  return { t: 'prepared', v }
}

export function parseReady (x: unknown, v: number): ReadyMsg {
  envelope(x, ['ready'], v)
  return { t: 'ready', v }
}

export function parseServing (x: unknown, v: number): ServingMsg & { at: Partial<Marks> } {
  const o = envelope(x, ['serving'], v)
  return { t: 'serving', v, servingAt: bigintString(o, 'servingAt'), at: parseMarks(o.marks, SERVING_MARKS) }
}

/** Reads the clock marks a peer sent (absent: an older release sends none); a malformed one is a protocol error. */
function parseMarks (x: unknown, keys: readonly (keyof Marks)[]): Partial<Marks> {
  if (x === undefined) return {}
  const o = obj(x, "'marks'")
  const out: Partial<Marks> = {}
  for (const k of keys) if (o[k] !== undefined) out[k] = BigInt(bigintString(o, k))
  return out
}

export function parseDrained (x: unknown, v: number): DrainedMsg {
  const o = envelope(x, ['drained'], v)
  return { t: 'drained', v, handle: str(o, 'handle', LIMITS.name), ok: check.bool(o.ok, "'ok'") }
}

/** A watcher's request after its first message: hold off every commit until it closes (see Generation). */
export function parseWatcherRequest (x: unknown, v: number): { t: 'fence' } {
  envelope(x, ['fence'], v)
  return { t: 'fence' }
}

export function parseStatusReply (x: unknown): StatusReport {
  const o = envelope(x, ['status', 'refused'])
  if (o.t === 'refused') throw new PagegiftError(str(o, 'code', 64), str(o, 'reason'))
  return obj(o.status, 'status') as unknown as StatusReport
}

/** The version a status or watch answer came in: what the serving generation speaks with us. */
export function replyVersion (x: unknown): number {
  return envelope(x, ['status', 'refused', 'event']).v as number
}

export function parseEvent (x: unknown): WatchEvent {
  const o = envelope(x, ['event'])
  const e = obj(o.event, 'event')
  check.str(e.event, 'event name', 64)
  return e as unknown as WatchEvent
}

/** Message builders; `v` is the version negotiated on the channel. First messages are version-1 envelopes. */
export const msg = {
  hello: (pid: number, version: string, key: string | null): HelloMsg => ({ t: 'hello', v: MIN_PROTOCOL_VERSION, max: PROTOCOL_VERSION, pid, version, ...(key !== null ? { key } : {}) }),
  request: <T extends 'status' | 'watch'>(t: T, key: string | null = null): RequestMsg<T> => ({ t, v: MIN_PROTOCOL_VERSION, max: PROTOCOL_VERSION, ...(key !== null ? { key } : {}) }),
  refused: (v: number, code: string, reason: string): RefusedMsg => ({ t: 'refused', v, code, reason }),
  commit: (v: number, marks?: Record<string, string>): CommitMsg => ({ t: 'commit', v, ...(marks !== undefined ? { marks } : {}) }),
  abort: (v: number, code: string, reason: string): AbortMsg => ({ t: 'abort', v, code, reason }),
  ready: (v: number): ReadyMsg => ({ t: 'ready', v }),
  prepared: (v: number): PreparedMsg => ({ t: 'prepared', v }),
  serving: (v: number, servingAt: bigint, marks?: Record<string, string>): ServingMsg => ({ t: 'serving', v, servingAt: servingAt.toString(), ...(marks !== undefined ? { marks } : {}) }),
  drained: (v: number, handle: string, ok: boolean): DrainedMsg => ({ t: 'drained', v, handle, ok }),
  fence: (v: number) => ({ t: 'fence', v }),
  status: (v: number, status: StatusReport): StatusMsg => ({ t: 'status', v, status }),
  event: (v: number, event: WatchEvent): EventMsg => ({ t: 'event', v, event }),
}
