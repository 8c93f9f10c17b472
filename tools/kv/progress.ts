/** A one-line progress bar for a terminal (or plain lines when stdout is not a TTY). */
export class ProgressBar {
  private last = -1
  private readonly t0 = performance.now()

  constructor (private readonly label: string, private readonly total: number, private readonly unit: (n: number) => string) {}

  update (done: number): void {
    const pct = Math.floor(100 * done / this.total)
    if (pct === this.last) return
    this.last = pct
    const width = 30
    const full = Math.round(width * done / this.total)
    const secs = (performance.now() - this.t0) / 1000
    const rate = secs > 0 ? `${this.unit(done / secs)}/s` : ''
    const line = `${this.label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(pct).padStart(3)}% ${this.unit(done)} ${rate}`
    if (process.stdout.isTTY) process.stdout.write(`\r${line}${done >= this.total ? '\n' : ''}`)
    else if (pct % 25 === 0) process.stdout.write(line + '\n')
  }
}
