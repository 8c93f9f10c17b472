/** Redis-style memory sizes: "4gb", "512mb", "100k", "1048576". */
export function parseBytes (s: string): number | null {
  const m = /^(\d+)(b|k|kb|m|mb|g|gb)?$/i.exec(s.trim())
  if (m === null) return null
  const unit = (m[2] ?? 'b').toLowerCase()
  const mult: Record<string, number> = { b: 1, k: 1000, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 }
  return Number(m[1]) * mult[unit]
}
