/**
 * A line chart as a standalone SVG, written by hand (no plotting package): one line per series,
 * linear or log axes, ticks at round values, a legend. Any bench can use it.
 */

export interface Series { name: string, points: Array<[x: number, y: number]> }
export interface Axis { label: string, log?: boolean, format?: (v: number) => string, /** Tick values; by default powers of 10 (log) or round steps. */ ticks?: number[] }
export interface ChartOptions { title: string, x: Axis, y: Axis, width?: number, height?: number }

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf']
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** Maps data values to pixels on one axis, and picks its tick values. */
function scale (axis: Axis, values: number[], from: number, to: number): { at: (v: number) => number, ticks: number[] } {
  const f = axis.log === true ? Math.log10 : (v: number): number => v
  const lo = Math.min(...values.map(f))
  const hi = Math.max(...values.map(f))
  const a = axis.log === true ? Math.floor(lo) : lo
  const b = axis.log === true ? Math.ceil(hi) : hi
  const span = b - a === 0 ? 1 : b - a
  const at = (v: number): number => from + (f(v) - a) / span * (to - from)
  let ticks: number[]
  if (axis.log === true) {
    const step = Math.max(1, Math.ceil((b - a) / 10))
    ticks = Array.from({ length: Math.floor((b - a) / step) + 1 }, (_, i) => 10 ** (a + i * step))
  } else {
    const raw = span / 6
    const unit = 10 ** Math.floor(Math.log10(raw))
    const step = [1, 2, 5, 10].map((m) => m * unit).find((s) => s >= raw) ?? raw
    ticks = Array.from({ length: Math.floor(b / step) - Math.ceil(a / step) + 1 }, (_, i) => (Math.ceil(a / step) + i) * step)
  }
  return { at, ticks: axis.ticks?.filter((t) => t > 0 || axis.log !== true) ?? ticks }
}

/** Renders the chart; points with a non-positive value on a log axis are left out. */
export function lineChart (series: Series[], opts: ChartOptions): string {
  const width = opts.width ?? 900
  const height = opts.height ?? 520
  const legendRows = Math.ceil(series.length / 2)
  const m = { left: 80, right: 20, top: 40, bottom: 60 + legendRows * 18 }
  const keep = (p: [number, number]): boolean => (opts.x.log !== true || p[0] > 0) && (opts.y.log !== true || p[1] > 0)
  const clean = series.map((s) => ({ ...s, points: s.points.filter(keep).sort((p, q) => p[0] - q[0]) })).filter((s) => s.points.length > 0)
  const all = clean.flatMap((s) => s.points)
  if (all.length === 0) throw new RangeError('lineChart() needs at least one point')
  const x = scale(opts.x, all.map((p) => p[0]), m.left, width - m.right)
  const y = scale(opts.y, all.map((p) => p[1]), height - m.bottom, m.top)
  const fx = opts.x.format ?? String
  const fy = opts.y.format ?? String
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${esc(opts.title)}</text>`,
  ]
  for (const t of x.ticks) {
    const px = x.at(t).toFixed(1)
    out.push(`<line x1="${px}" x2="${px}" y1="${m.top}" y2="${height - m.bottom}" stroke="#ddd"/>`, `<text x="${px}" y="${height - m.bottom + 16}" text-anchor="middle">${esc(fx(t))}</text>`)
  }
  for (const t of y.ticks) {
    const py = y.at(t).toFixed(1)
    out.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${py}" y2="${py}" stroke="#ddd"/>`, `<text x="${m.left - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${esc(fy(t))}</text>`)
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${width - m.left - m.right}" height="${height - m.top - m.bottom}" fill="none" stroke="#333"/>`)
  out.push(`<text x="${(m.left + width - m.right) / 2}" y="${height - m.bottom + 36}" text-anchor="middle">${esc(opts.x.label)}</text>`)
  out.push(`<text transform="translate(16 ${(m.top + height - m.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.y.label)}</text>`)
  clean.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]
    const d = s.points.map(([px, py], k) => `${k === 0 ? 'M' : 'L'}${x.at(px).toFixed(1)} ${y.at(py).toFixed(1)}`).join(' ')
    out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"/>`)
    for (const [px, py] of s.points) out.push(`<circle cx="${x.at(px).toFixed(1)}" cy="${y.at(py).toFixed(1)}" r="2.5" fill="${colour}"/>`)
    const lx = m.left + (i % 2) * (width - m.left - m.right) / 2
    const ly = height - m.bottom + 54 + Math.floor(i / 2) * 18
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="3"/>`, `<text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
