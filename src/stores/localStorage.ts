import type { ChannelStore } from './ChannelStore.js'
import { ChannelStoreError } from './errors.js'
import { kvChannelStore, type Locks, realmLocks } from './kvPool.js'

/**
 * The part of Web Storage the store uses; with `key` and `length` too, it can also
 * {@link ChannelStore.list} its entries.
 */
export type ChannelStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> &
  Partial<Pick<Storage, 'key' | 'length'>>

/**
 * A {@link ChannelStore} in Web Storage, so that a page reuses its channels across reloads: the
 * first channel of each scope is mppx's JSON entry `viem-mpp:<origin>:chan:<payee>:<token>:<escrow>:<chainId>`
 * (`viem-mpp::chan:…` for the store's own entries), further ones sit in the scope's pool, and each
 * channel's ledger is `viem-mpp:ledger:<channelId>`.
 *
 * Tabs of one origin share the storage: each channel is leased by one tab at a time through the
 * Web Locks API (`navigator.locks`, released by the browser when the tab goes), so that two tabs
 * pay on two channels. Without Web Locks, leases hold within the page only. When the page is
 * hidden for good (`pagehide`), the ledgers of the channels it holds are written exactly.
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
): ChannelStore & Required<Pick<ChannelStore, 'forOrigin' | 'pool'>> {
  if (!storage) throw new ChannelStoreError({ reason: 'noStorage' })
  return kvChannelStore({
    kv: {
      get: (name) => storage.getItem(name) ?? undefined,
      set: (name, value) => storage.setItem(name, value),
      delete: (name) => storage.removeItem(name),
      ...(storage.key && storage.length !== undefined ? { names: () => storageKeys(storage) } : {}),
    },
    locks: webLocks() ?? locksOf(storage),
    onExit: (write) => globalThis.addEventListener?.('pagehide', write),
  })
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

/** Leases within the page, one set per storage (two stores over it share them). */
const pageLocks = new WeakMap<ChannelStorage, Locks>()

function locksOf(storage: ChannelStorage) {
  const locks = pageLocks.get(storage) ?? realmLocks()
  pageLocks.set(storage, locks)
  return locks
}

type LockManagerLike = {
  request(
    name: string,
    options: { ifAvailable: boolean },
    callback: (lock: unknown) => Promise<void> | undefined,
  ): Promise<unknown>
  query(): Promise<{ held?: { name?: string }[] }>
}

/** Leases across the browser's tabs, through the Web Locks API, where there is one. */
function webLocks(): Locks | undefined {
  const locks = (globalThis.navigator as { locks?: LockManagerLike } | undefined)?.locks
  if (!locks) return undefined
  return {
    take: (name) =>
      new Promise((taken) => {
        locks
          .request(name, { ifAvailable: true }, (lock) => {
            if (!lock) {
              taken(undefined)
              return undefined
            }
            return new Promise<void>((release) => taken(release))
          })
          .catch(() => taken(undefined))
      }),
    async held() {
      const { held = [] } = await locks.query()
      return new Set(held.flatMap(({ name }) => (name ? [name] : [])))
    },
  }
}
