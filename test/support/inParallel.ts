/**
 * Runs `task(1)` … `task(count)`, `inFlight` at a time (at least one): each worker takes the next
 * index as soon as its task ends, so that `inFlight` calls are always under way.
 *
 * @example
 * ```ts
 * await inParallel(100, 10, async (index) => void (await client.getBalance({ address })))
 * ```
 */
export async function inParallel(
  count: number,
  inFlight: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < count) await task(++next)
  }
  await Promise.all(Array.from({ length: Math.max(1, inFlight) }, worker))
}
