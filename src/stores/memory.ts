import { entryKey } from 'mppx/client'
import type { ChannelEntry, ChannelStore } from './ChannelStore.js'
import { originOf } from './origin.js'

/**
 * An in-memory {@link ChannelStore}, per origin. Entries are copied on `get` and `set`, so that a
 * caller mutating an entry it holds (as mppx's session client does) changes nothing stored until
 * it calls `set`.
 *
 * @example
 * ```ts
 * import { memoryChannelStore, session } from 'viem-mpp'
 *
 * const provider = session({ account, client, store: memoryChannelStore() })
 * ```
 */
export function memoryChannelStore(): ChannelStore {
  const origins = new Map<string, Map<string, ChannelEntry>>()
  const namespace = (origin: string) => {
    const entries = origins.get(origin) ?? new Map<string, ChannelEntry>()
    origins.set(origin, entries)
    return view(entries)
  }
  return {
    ...namespace(''),
    forOrigin: (origin) => namespace(originOf(origin)),
    async list() {
      return [...origins].flatMap(([origin, entries]) =>
        [...entries].map(([key, entry]) => ({
          origin: origin || undefined,
          key,
          entry: structuredClone(entry),
        })),
      )
    },
  }
}

function view(entries: Map<string, ChannelEntry>) {
  return {
    get(key: string) {
      const entry = entries.get(key)
      return entry && structuredClone(entry)
    },
    set(entry: ChannelEntry) {
      entries.set(entryKey(entry), structuredClone(entry))
    },
    delete(key: string) {
      entries.delete(key)
    },
  }
}
