/**
 * A wait with a deadline, for the places that give up waiting without failing: `p`'s value if it
 * settles within `ms`, else `late` (`p` runs on, and nobody waits for it). A rejection of `p` that
 * comes in time is thrown. The timer never outlives the race, so it keeps no process alive.
 */
export async function within<T, L> (p: Promise<T>, ms: number, late: L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<L>((resolve) => { timer = setTimeout(() => resolve(late), ms) })
  try {
    return await Promise.race([p, deadline])
  } finally {
    clearTimeout(timer)
  }
}
