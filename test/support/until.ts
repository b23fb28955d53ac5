/**
 * Resolves once `check` holds, looking again every `every` ms; rejects with `message` after
 * `within` ms. For conditions a test cannot be told of (a lease running out, a cluster forming).
 *
 * @example
 * ```ts
 * await until(async () => (await store.pool.free(origin, key)).length === 1)
 * ```
 */
export async function until(
  check: () => Promise<boolean>,
  { within = 10_000, every = 20, message = 'Condition not met in time.' } = {},
) {
  const end = Date.now() + within
  while (!(await check())) {
    if (Date.now() > end) throw new Error(message)
    await new Promise((resolve) => setTimeout(resolve, every))
  }
}
