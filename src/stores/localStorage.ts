import { createJsonChannelStore } from 'mppx/client'
import type { ChannelRecord, ChannelStore } from './ChannelStore.js'
import { ChannelStoreError } from './errors.js'
import { originOf } from './origin.js'

/**
 * The part of Web Storage the store uses; with `key` and `length` too, it can also
 * {@link ChannelStore.list} its entries.
 */
export type ChannelStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> &
  Partial<Pick<Storage, 'key' | 'length'>>

const prefix = 'viem-mpp:'
/** mppx's JSON store writes each entry under this prefix. */
const entryPrefix = 'chan:'

/**
 * A {@link ChannelStore} in Web Storage (mppx's JSON channel store), so that a page reuses its
 * channels across reloads. Keys are `viem-mpp:<origin>:chan:<payee>:<token>:<escrow>:<chainId>`
 * under {@link ChannelStore.forOrigin}, and `viem-mpp::chan:…` without it.
 *
 * @example
 * ```ts
 * import { localStorageChannelStore, session } from 'viem-mpp'
 *
 * const provider = session({ account, client, store: localStorageChannelStore() })
 * ```
 */
export function localStorageChannelStore(
  storage: ChannelStorage | undefined = globalThis.localStorage,
): ChannelStore {
  if (!storage) throw new ChannelStoreError({ reason: 'noStorage' })
  const withPrefix = (prefix: string) =>
    createJsonChannelStore({
      get: (key) => storage.getItem(prefix + key) ?? undefined,
      set: (key, value) => storage.setItem(prefix + key, value),
      delete: (key) => storage.removeItem(prefix + key),
    })
  const list = async () => {
    const records: ChannelRecord[] = []
    for (const name of storageKeys(storage)) {
      // `viem-mpp:<origin>:chan:<key>`; an origin (scheme://host:port) holds no `:chan:`.
      const at = name.indexOf(`:${entryPrefix}`, prefix.length - 1)
      if (!name.startsWith(prefix) || at < 0) continue
      const origin = name.slice(prefix.length, at)
      const key = name.slice(at + 1 + entryPrefix.length)
      const entry = await withPrefix(`${prefix}${origin}:`).get(key)
      if (entry) records.push({ origin: origin || undefined, key, entry })
    }
    return records
  }
  return {
    ...withPrefix(`${prefix}:`),
    forOrigin: (origin) => withPrefix(`${prefix}${originOf(origin)}:`),
    ...(storage.key && storage.length !== undefined ? { list } : {}),
  }
}

/** The storage's keys, read before any is used (a write would reorder them). */
function storageKeys(storage: ChannelStorage) {
  const names: string[] = []
  for (let index = 0; index < (storage.length ?? 0); index++) {
    const name = storage.key?.(index)
    if (name !== null && name !== undefined) names.push(name)
  }
  return names
}
