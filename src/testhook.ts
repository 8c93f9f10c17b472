/**
 * The one test-only hook of the package, never part of its public API. Tests start a real child
 * process with `PAGEGIFT_TEST_HOOKS` set to make it fail at an exact point, so that every failure
 * is driven through real processes and real syscalls rather than mocks.
 *
 * Format: `point=action[,point=action...]`, where a point is a name such as
 * `successor:before-ready` and an action is one of:
 * - `kill`: SIGKILL this process at that point;
 * - `stall`: never go past that point (the test kills the process; a 10-minute timer bounds it);
 * - any other word: a flag, read with `testFlag(point)` (for example `alloc:unsealed=on`).
 *
 * The variable is read once, at load; when it is not set every call here is a no-op.
 */

const hooks = parse(process.env.PAGEGIFT_TEST_HOOKS)

function parse (spec: string | undefined): Map<string, string> | null {
  if (spec === undefined || spec === '') return null
  const map = new Map<string, string>()
  for (const item of spec.split(',')) {
    const eq = item.indexOf('=')
    if (eq > 0) map.set(item.slice(0, eq).trim(), item.slice(eq + 1).trim())
  }
  return map
}

/** The action set for `point`, or undefined (always undefined unless the variable is set). */
export function testFlag (point: string): string | undefined {
  return hooks === null ? undefined : hooks.get(point)
}

/** True when any test hook is set: lets hot paths skip the lookup. */
export const testHooksActive = hooks !== null

/**
 * A named point a test may stop the process at. Writes `pagegift-test-point <point>` to stderr
 * first, so the test knows the process got there.
 */
export async function testPoint (point: string): Promise<void> {
  const action = testFlag(point)
  if (action === undefined) return
  process.stderr.write(`pagegift-test-point ${point}\n`)
  if (action === 'kill') process.kill(process.pid, 'SIGKILL')
  if (action === 'stall') await new Promise((resolve) => setTimeout(resolve, 600_000))
}
