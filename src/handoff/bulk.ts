/**
 * Bulk messages: a STATE can outgrow one channel message (64 KiB of JSON, 64 fds), so it travels
 * as numbered parts, each with a slice of the JSON text and up to PART_FDS fds. The receiver
 * bounds the parts, checks their order, and closes every fd if anything is wrong.
 */
import type { Env, HandoffChannel } from './env.ts'
import { check, LIMITS, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, protocolError } from './protocol.ts'

/** JSON chars per part: even if every char escapes to two, or is 3 bytes of UTF-8, a part fits in 64 KiB. */
const PART_CHARS = 16_000
const PART_FDS = 60
const MAX_PARTS = Math.ceil(LIMITS.fds / PART_FDS) + 512

/** Sends `body` as parts at protocol version `v` (the one negotiated on the channel); `last` is called just before the last part goes to the kernel. */
export async function sendBulk (ch: HandoffChannel, t: string, body: unknown, fds: number[], v = PROTOCOL_VERSION, last?: () => void): Promise<void> {
  const json = JSON.stringify(body)
  const parts = Math.max(1, Math.ceil(json.length / PART_CHARS), Math.ceil(fds.length / PART_FDS))
  if (parts > MAX_PARTS || fds.length > LIMITS.fds) throw new RangeError(`handoff: state too large (${json.length} chars of JSON, ${fds.length} fds)`)
  for (let part = 0; part < parts; part++) {
    const slice = json.slice(part * PART_CHARS, (part + 1) * PART_CHARS)
    if (part === parts - 1) last?.()
    await ch.send({ t, v, part, parts, json: slice }, fds.slice(part * PART_FDS, (part + 1) * PART_FDS))
  }
}

/**
 * Receives the rest of a bulk message whose first part is `first` (already envelope-checked).
 * Every part must be at version `v` (by default the first part's, if this side speaks it).
 * Returns the parsed body and all fds; closes every fd on failure.
 */
export async function recvBulk (env: Env, ch: HandoffChannel, first: { msg: unknown, fds: number[] }, timeoutMs: number, v?: number): Promise<{ body: unknown, fds: number[] }> {
  const fds: number[] = [...first.fds]
  try {
    const head = first.msg as { t: string, v?: unknown, part?: unknown, parts?: unknown, json?: unknown }
    const version = v ?? head.v
    if (typeof version !== 'number' || version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) throw protocolError('bad bulk version')
    const parts = head.parts
    if (head.part !== 0 || typeof parts !== 'number' || !Number.isInteger(parts) || parts < 1 || parts > MAX_PARTS) throw protocolError('bad bulk header')
    const texts: string[] = []
    let m = first
    for (let part = 0; ; part++) {
      const p = m.msg as { t?: unknown, v?: unknown, part?: unknown, parts?: unknown, json?: unknown }
      if (p.t !== head.t || p.v !== version || p.part !== part || p.parts !== parts || typeof p.json !== 'string' || p.json.length > PART_CHARS) {
        throw protocolError(`bad part ${part} of ${parts} of '${head.t}'`)
      }
      if (m.fds.length > PART_FDS) throw protocolError('too many fds in one part')
      texts.push(p.json)
      if (part === parts - 1) break
      m = await ch.recv({ timeoutMs })
      fds.push(...m.fds)
    }
    return { body: check.json(texts.join(''), `'${head.t}'`), fds }
  } catch (err) {
    for (const fd of fds) env.closeFd(fd)
    throw err
  }
}
