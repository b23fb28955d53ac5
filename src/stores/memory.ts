import type { ChannelStore } from './ChannelStore.js'
import { kvChannelStore, realmLocks } from './kvPool.js'

/**
 * An in-memory {@link ChannelStore}, per origin, with a pool: several providers sharing it each
 * pay on a channel of their own. Entries are copied on `get` and `set` (they are kept as JSON), so
 * that a caller mutating an entry it holds (as mppx's session client does) changes nothing stored
 * until it calls `set`.
 *
 * @example
 * ```ts
 * import { memoryChannelStore, session } from 'viem-mpp'
 *
 * const provider = session({ account, client, store: memoryChannelStore() })
 * ```
 */
export function memoryChannelStore(): ChannelStore &
  Required<Pick<ChannelStore, 'forOrigin' | 'pool' | 'list'>> {
  const items = new Map<string, string>()
  const store = kvChannelStore({
    kv: {
      get: (name) => items.get(name),
      set: (name, value) => void items.set(name, value),
      delete: (name) => void items.delete(name),
      names: () => [...items.keys()],
    },
    locks: realmLocks(),
  })
  return store as typeof store & Required<Pick<ChannelStore, 'list'>>
}
