import type { StoreContext } from './context.js'

/**
 * The end of a Redis store's leases: `releaseAll` ends each lease held here (its ledger written
 * exactly), and once `watch` was called, so does the process running out of work (`beforeExit`),
 * which then closes a connection the store made (`owned`), so that a script's process ends on its
 * own. A process that is killed leaves its leases to run out (on this host, to be found dead).
 *
 * @example
 * ```ts
 * const exit = leasesEnd(context, { owned: true })
 * exit.watch() // as a lease is taken
 * await exit.releaseAll()
 * ```
 */
export function leasesEnd(
  { held, connection }: Pick<StoreContext, 'held' | 'connection'>,
  { owned }: { owned: boolean },
) {
  /** Each lease in turn: one failing does not keep the others. */
  const releaseAll = async () => {
    const failures: unknown[] = []
    for (const release of [...held]) await release().catch((error) => failures.push(error))
    if (failures.length > 0) throw failures[0]
  }
  let watching = false
  const unwatch = () => {
    watching = false
    process.off('beforeExit', onBeforeExit)
  }
  const onBeforeExit = () => {
    if (held.size === 0 && !owned) return unwatch()
    releaseAll()
      .catch(() => {})
      .finally(() => {
        if (owned) connection.close().catch(() => {})
        unwatch()
      })
  }
  return {
    releaseAll,
    unwatch,
    watch() {
      if (watching) return
      watching = true
      process.on('beforeExit', onBeforeExit)
    },
  }
}
