/** The http bench's plot: p99 latency per 250 ms over the run, one line per reload method, log scale. Plain SVG. */

interface Series { name: string, samples: { at: number, ms: number, ok: boolean }[], reloads: [number, number][] }

const COLORS = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e']
const W = 900
const H = 420
const PAD = { l: 60, r: 150, t: 30, b: 40 }
const BUCKET = 250

function p99PerBucket (s: Series): [number, number][] {
  const buckets = new Map<number, number[]>()
  for (const x of s.samples) {
    const b = Math.floor(x.at / BUCKET)
    const list = buckets.get(b) ?? []
    list.push(x.ok ? x.ms : Math.max(x.ms, 1000))
    buckets.set(b, list)
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([b, xs]) => {
    xs.sort((a, c) => a - c)
    return [(b * BUCKET) / 1000, xs[Math.min(xs.length - 1, Math.floor(0.99 * xs.length))]]
  })
}

export function latencySvg (series: Series[]): string {
  const lines = series.map(p99PerBucket)
  const tMax = Math.max(1, ...lines.flat().map(([t]) => t))
  const yMin = 0.1
  const yMax = Math.max(10, ...lines.flat().map(([, v]) => v)) * 1.2
  const x = (t: number): number => PAD.l + (t / tMax) * (W - PAD.l - PAD.r)
  const y = (v: number): number => PAD.t + (1 - (Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * (H - PAD.t - PAD.b)
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`]
  for (let d = Math.ceil(Math.log10(yMin)); d <= Math.log10(yMax); d++) {
    const v = 10 ** d
    out.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${PAD.l - 6}" y="${y(v) + 4}" text-anchor="end">${v >= 1 ? v : v.toFixed(1)} ms</text>`)
  }
  for (let t = 0; t <= tMax; t += 5) out.push(`<text x="${x(t)}" y="${H - PAD.b + 16}" text-anchor="middle">${t} s</text>`)
  out.push(`<text x="${PAD.l}" y="18">p99 latency per 250 ms under 64 keep-alive connections; ticks at the bottom: reloads</text>`)
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]
    const pts = lines[i].map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.5" points="${pts}"/>`)
    for (const [a] of s.reloads) out.push(`<line x1="${x(a / 1000)}" x2="${x(a / 1000)}" y1="${H - PAD.b - 4 - i * 6}" y2="${H - PAD.b - 10 - i * 6}" stroke="${c}" stroke-width="2"/>`)
    out.push(`<line x1="${W - PAD.r + 10}" x2="${W - PAD.r + 30}" y1="${PAD.t + 10 + i * 18}" y2="${PAD.t + 10 + i * 18}" stroke="${c}" stroke-width="3"/><text x="${W - PAD.r + 36}" y="${PAD.t + 14 + i * 18}">${s.name}</text>`)
  })
  out.push(`<line x1="${PAD.l}" x2="${PAD.l}" y1="${PAD.t}" y2="${H - PAD.b}" stroke="#333"/><line x1="${PAD.l}" x2="${W - PAD.r}" y1="${H - PAD.b}" y2="${H - PAD.b}" stroke="#333"/>`, '</svg>')
  return out.join('\n') + '\n'
}
