/** Human-readable figures shared by the CLI and the benchmarks. */

/** `1536` -> `1.5 KiB`: binary units, one decimal unless the value is whole. */
export function formatBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let u = 0
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++ }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[u]}`
}
