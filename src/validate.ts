/**
 * The one validator for every message a peer sends: the gift wire, the handoff protocol and the
 * QEMU keeper's control socket. Each protocol makes a `Validator` with its own error factory, so
 * that a bad message becomes that protocol's error (one `code`, a message naming the field), and
 * every check reads the same way: `v.uint(x, 'what')` returns the value typed, or throws.
 */

export type Fail = (why: string) => Error

export class Validator {
  readonly #fail: Fail

  constructor (fail: Fail) {
    this.#fail = fail
  }

  /** Throws this protocol's error for `why`. */
  fail (why: string): never {
    throw this.#fail(why)
  }

  obj (x: unknown, what: string): Record<string, unknown> {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) this.fail(`${what} is not an object`)
    return x as Record<string, unknown>
  }

  int (x: unknown, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) this.fail(`${what} is not an integer in [${min}, ${max}]`)
    return x as number
  }

  uint (x: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
    return this.int(x, what, 0, max)
  }

  str (x: unknown, what: string, max = 4096): string {
    if (typeof x !== 'string' || x.length > max) this.fail(`${what} is not a string of at most ${max} characters`)
    return x as string
  }

  bool (x: unknown, what: string): boolean {
    if (typeof x !== 'boolean') this.fail(`${what} is not a boolean`)
    return x as boolean
  }

  /** A string drawn from `values`. */
  oneOf<T extends string> (x: unknown, what: string, values: readonly T[]): T {
    if (typeof x !== 'string' || !(values as readonly string[]).includes(x)) this.fail(`${what} is not one of ${values.join(', ')}`)
    return x as T
  }

  /** A decimal integer carried as a string (for bigint clocks). */
  decimal (x: unknown, what: string): string {
    const s = this.str(x, what, 32)
    if (!/^\d+$/.test(s)) this.fail(`${what} is not a decimal integer string`)
    return s
  }

  /** An array of at most `maxItems`, each item checked by `each`. */
  arr<T> (x: unknown, what: string, maxItems: number, each: (item: unknown, what: string) => T): T[] {
    if (!Array.isArray(x) || x.length > maxItems) this.fail(`${what} is not an array of at most ${maxItems} items`)
    return (x as unknown[]).map((item, i) => each(item, `${what}[${i}]`))
  }

  uints (x: unknown, what: string, maxItems: number, max = Number.MAX_SAFE_INTEGER): number[] {
    return this.arr(x, what, maxItems, (item, w) => this.uint(item, w, max))
  }

  /** Parses JSON text; a parse failure is this protocol's error. */
  json (text: string, what: string): unknown {
    try {
      return JSON.parse(text)
    } catch {
      return this.fail(`${what} is not valid JSON`)
    }
  }
}
