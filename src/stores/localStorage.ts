import { createJsonChannelStore } from 'mppx/client'
import type { ChannelStore } from './ChannelStore.js'
import { ChannelStoreError } from './errors.js'
import { originOf } from './origin.js'

/** The part of Web Storage the store uses. */
export type ChannelStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>

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
  return {
    ...withPrefix('viem-mpp::'),
    forOrigin: (origin) => withPrefix(`viem-mpp:${originOf(origin)}:`),
  }
}
