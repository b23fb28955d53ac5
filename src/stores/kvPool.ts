import { createJsonChannelStore, entryKey } from 'mppx/client'
import type { ChannelPool, ChannelRecord, ChannelStore } from './ChannelStore.js'
import { ChannelStoreError } from './errors.js'
import {
  entryAt,
  erase,
  insert,
  type Kv,
  locate,
  names,
  prefix,
  recordsOf,
  scopesIn,
} from './kvEntries.js'
import { type KvLeaseContext, kvLease } from './kvLease.js'
import { originOf } from './origin.js'

export type { Kv } from './kvEntries.js'

/** Leases held in one JS realm, or across a browser's tabs (Web Locks). */
export type Locks = {
  /** Takes `name` if nobody holds it: the function that lets it go, else `undefined`. */
  take(name: string): Promise<(() => void) | undefined>
  /** The names held now, by anyone. */
  held(): Promise<ReadonlySet<string>>
}

/**
 * Leases of one JS realm: enough where no other realm shares the backend (a `Map`).
 *
 * @example
 * ```ts
 * const store = kvChannelStore({ kv, locks: realmLocks() })
 * ```
 */
export function realmLocks(): Locks {
  const held = new Set<string>()
  return {
    async take(name) {
      if (held.has(name)) return undefined
      held.add(name)
      return () => held.delete(name)
    },
    held: async () => held,
  }
}

/**
 * A {@link ChannelStore} over a synchronous key-value backend, with its {@link ChannelPool}: the
 * first channel of a scope is mppx's JSON entry `viem-mpp:<origin>:chan:<key>` (what mppx's JSON
 * store reads), further ones `viem-mpp:<origin>:pool:<key>:<channelId>` listed in
 * `viem-mpp:<origin>:index:<key>`, and each channel's ledger is `viem-mpp:ledger:<channelId>`.
 * Leases are `locks`; `onExit` registers what to run when the realm ends (a page's `pagehide`),
 * which writes the exact ledgers of the leases still held.
 *
 * @example
 * ```ts
 * const items = new Map<string, string>()
 * const store = kvChannelStore({
 *   kv: { get: (name) => items.get(name), set: (name, value) => void items.set(name, value), delete: (name) => void items.delete(name) },
 *   locks: realmLocks(),
 * })
 * ```
 */
export function kvChannelStore({
  kv,
  locks,
  onExit,
}: {
  kv: Kv
  locks: Locks
  onExit?: ((write: () => void) => void) | undefined
}): ChannelStore & Required<Pick<ChannelStore, 'forOrigin' | 'pool'>> {
  /** mppx's JSON store over one namespace's names: an origin's, or the store's own (`''`). */
  const json = (namespace: string) =>
    createJsonChannelStore({
      get: (name) => kv.get(`${prefix}${namespace}:${name}`),
      set: (name, value) => kv.set(`${prefix}${namespace}:${name}`, value),
      delete: (name) => kv.delete(`${prefix}${namespace}:${name}`),
    })

  const live = new Set<() => void>()
  onExit?.(() => {
    for (const write of [...live]) write()
  })

  const pool = kvPool({ kv, live }, locks)

  return {
    ...json(''),
    forOrigin: (origin) => json(originOf(origin)),
    pool,
    ...(kv.names
      ? {
          async list() {
            const held = await locks.held()
            const records: ChannelRecord[] = []
            for (const { origin, key } of scopesIn(kv.names?.() ?? []))
              records.push(...(await recordsOf(kv, origin, key, held)))
            return records
          },
        }
      : {}),
  }
}

/**
 * The {@link ChannelPool} of a {@link kvChannelStore}: a channel is leased by taking its lock in
 * `locks`, so that two holders never pay on one channel at once, and a claim moves it to the
 * origin it is used at.
 */
function kvPool(context: KvLeaseContext, locks: Locks): ChannelPool {
  const { kv } = context
  return {
    async free(origin, key) {
      const at = originOf(origin)
      const held = await locks.held()
      return [
        ...(await recordsOf(kv, at, key, held)),
        ...(await recordsOf(kv, '', key, held)),
      ].filter(
        ({ entry, ledger }) =>
          (entry.opened || ledger?.openingUntil !== undefined) && !ledger?.lease?.live,
      )
    },
    async claim(record, options) {
      const id = record.entry.channelId.toLowerCase()
      const from = record.origin ?? ''
      const release = await locks.take(names.lock(id))
      if (!release) return undefined
      const name = locate(kv, from, record.key, id)
      const entry = name && entryAt(kv, name)
      if (!name || !entry) {
        release()
        return undefined
      }
      const origin = originOf(options.origin)
      if (from !== origin) {
        erase(kv, from, record.key, id)
        insert(kv, origin, entry)
      }
      const openingUntil = record.ledger?.openingUntil
      return kvLease(context, { release, record, origin, tally: options.tally, openingUntil })
    },
    async add(entry, { openingUntil, ...options }) {
      const id = entry.channelId.toLowerCase()
      const release = await locks.take(names.lock(id))
      if (!release) throw new ChannelStoreError({ reason: 'leaseLost', channelId: id })
      const origin = originOf(options.origin)
      insert(kv, origin, entry)
      const record: ChannelRecord = { origin, key: entryKey(entry), entry, ledger: undefined }
      return kvLease(context, { release, record, origin, tally: options.tally, openingUntil })
    },
    async put(entry, { origin }) {
      const at = origin === undefined ? '' : originOf(origin)
      const key = entryKey(entry)
      if (locate(kv, at, key, entry.channelId.toLowerCase())) return false
      insert(kv, at, entry)
      return true
    },
  }
}
