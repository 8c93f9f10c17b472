/** Bulk loading with our pipelined client: SETs in batches, several batches in flight. */
import { KvClient, RespError, type Arg } from '../../src/kv/client.ts'
import { Checksum, fillValue, keyName } from './data.ts'

export interface LoadOptions {
  port: number
  count: number
  valueSize: number
  prefix?: string
  /** Commands per write and writes in flight. */
  batch?: number
  window?: number
  onProgress?: (done: number, total: number) => void
}

export interface LoadResult { keys: number, bytes: number, ms: number, errors: number, checksum: Checksum }

export async function loadKeys (o: LoadOptions): Promise<LoadResult> {
  const prefix = o.prefix ?? 'key:'
  const batch = o.batch ?? 256
  const window = o.window ?? 8
  const client = await KvClient.connect(o.port)
  const checksum = new Checksum()
  const value = Buffer.allocUnsafe(o.valueSize)
  const t0 = performance.now()
  let next = 0
  let done = 0
  let errors = 0
  const worker = async (): Promise<void> => {
    while (next < o.count) {
      const from = next
      const to = Math.min(o.count, from + batch)
      next = to
      const cmds: Arg[][] = []
      for (let i = from; i < to; i++) {
        const key = keyName(prefix, i)
        fillValue(value, i)
        checksum.add(key, value)
        cmds.push(['SET', key, Buffer.from(value)])
      }
      const replies = await client.pipeline(cmds)
      for (const r of replies) if (r instanceof RespError) errors++
      done += to - from
      o.onProgress?.(done, o.count)
    }
  }
  await Promise.all(Array.from({ length: window }, worker))
  await client.close()
  return { keys: o.count, bytes: o.count * o.valueSize, ms: performance.now() - t0, errors, checksum }
}

/** Reads keys [0, count) back with MGET and checksums them; counts values that differ from the expected ones. */
export async function verifyKeys (port: number, count: number, valueSize: number, prefix = 'key:'): Promise<{ checksum: Checksum, wrong: number, missing: number }> {
  const client = await KvClient.connect(port)
  const checksum = new Checksum()
  const expect = Buffer.allocUnsafe(valueSize)
  let wrong = 0
  let missing = 0
  const per = 200
  const inflight: Promise<void>[] = []
  for (let from = 0; from < count; from += per) {
    const keys: string[] = []
    for (let i = from; i < Math.min(count, from + per); i++) keys.push(keyName(prefix, i))
    inflight.push(client.pipeline([['MGET', ...keys]]).then(([r]) => {
      const vals = Array.isArray(r) ? r : []
      keys.forEach((k, j) => {
        const v = vals[j]
        if (!Buffer.isBuffer(v)) { missing++; return }
        checksum.add(k, v)
        if (!v.equals(fillValue(expect, from + j))) wrong++
      })
    }))
    if (inflight.length >= 8) await inflight.shift()
  }
  await Promise.all(inflight)
  await client.close()
  return { checksum, wrong, missing }
}

