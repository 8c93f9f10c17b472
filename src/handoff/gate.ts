/**
 * A successor's gate: what its adopted handles do at the commit (start reading, listen), at an
 * abort (close), and when the predecessor has flushed the output it still had queued on one.
 */
import type { Gate } from './handles.ts'

export class SuccessorGate implements Gate {
  committed = false
  #commit: (() => void)[] = []
  #abort: (() => void)[] = []
  #drained = new Map<string, (ok: boolean) => void>()
  onCommit (fn: () => void): void { this.#commit.push(fn) }
  onAbort (fn: () => void): void { this.#abort.push(fn) }
  onDrained (handle: string, fn: (ok: boolean) => void): void { this.#drained.set(handle, fn) }
  /** The predecessor flushed (or gave up on) the output it had queued on `handle`. */
  drained (handle: string, ok: boolean): void {
    const fn = this.#drained.get(handle)
    this.#drained.delete(handle)
    fn?.(ok)
  }

  /** Handles still waiting for DRAINED. */
  get draining (): string[] { return [...this.#drained.keys()] }
  open (): void {
    this.committed = true
    for (const fn of this.#commit.splice(0)) fn()
    this.#abort.length = 0
  }

  abort (): void {
    for (const fn of this.#abort.splice(0).reverse()) fn()
    this.#commit.length = 0
  }
}
