import { entryKey } from 'mppx/client'
import type {
  ChannelEntry,
  ChannelLease,
  ChannelPool,
  ChannelRecord,
  ChannelStore,
} from '../../stores/ChannelStore.js'

/**
 * Where a session provider keeps its channels: the store's pool (several channels per scope,
 * leased one holder at a time, the mark written `ahead` several calls at a time), or, for a store
 * without one (mppx's own stores), one channel per scope kept for this process, its mark written
 * before each voucher.
 */
export type Book = ChannelPool & {
  /** How many calls' worth the mark is written ahead of the vouchers signed. */
  readonly ahead: number
  /**
   * The leases taken through this book and not released or removed yet: what goes back to the
   * store when the provider is garbage-collected. Nothing in a lease refers to the provider.
   */
  readonly held: ReadonlySet<ChannelLease>
}

/**
 * The {@link Book} of `store`.
 *
 * @example
 * ```ts
 * const book = bookOf(fileChannelStore(), 10)
 * const [free] = await book.free(origin, key)
 * ```
 */
export function bookOf(store: ChannelStore, ahead: number): Book {
  const pool = store.pool ?? plainPool(store)
  const held = new Set<ChannelLease>()
  /** `lease`, counted in `held` until it is released or removed. */
  const tracked = (lease: ChannelLease): ChannelLease => {
    const counted: ChannelLease = {
      get record() {
        return lease.record
      },
      get lost() {
        return lease.lost
      },
      raise: (mark, needed) => lease.raise(mark, needed),
      update: (changes) => lease.update(changes),
      async release() {
        await lease.release()
        held.delete(counted)
      },
      async remove() {
        await lease.remove()
        held.delete(counted)
      },
    }
    held.add(counted)
    return counted
  }
  return {
    ...pool,
    ahead: store.pool ? ahead : 1,
    held,
    claim: async (record, options) => {
      const lease = await pool.claim(record, options)
      return lease && tracked(lease)
    },
    add: async (entry, options) => tracked(await pool.add(entry, options)),
  }
}

/** Channels of plain stores leased in this process, by store: such stores have no leases. */
const leasedHere = new WeakMap<ChannelStore, Set<string>>()

/**
 * A pool over a store of one channel per key (mppx's interface): the entry of the key is its
 * only channel, leased within this process only; its `cumulativeAmount` is the mark. Another
 * process sharing the store is not kept out: such stores are for one process at a time.
 */
function plainPool(store: ChannelStore): ChannelPool {
  const leased = leasedHere.get(store) ?? new Set<string>()
  leasedHere.set(store, leased)
  const namespace = (origin: string | undefined) =>
    origin === undefined ? store : (store.forOrigin?.(origin) ?? store)

  const lease = (record: ChannelRecord, origin: string, tally: () => { signed: bigint }) => {
    const id = record.entry.channelId.toLowerCase()
    leased.add(id)
    let entry = record.entry
    let ended = false
    const target = namespace(origin)
    const write = async (changes: Partial<ChannelEntry>) => {
      entry = { ...entry, ...changes }
      if (!ended) await target.set(entry)
    }
    const end = () => {
      ended = true
      leased.delete(id)
    }
    const leaseOf: ChannelLease = {
      record,
      lost: false,
      raise: async (mark) => {
        await write({ cumulativeAmount: mark })
        return mark
      },
      update: ({ deposit, opened }) =>
        write({
          ...(deposit === undefined ? {} : { deposit }),
          ...(opened === undefined ? {} : { opened }),
        }),
      async release() {
        if (ended) return
        await write({ cumulativeAmount: tally().signed })
        end()
      },
      async remove() {
        if (ended) return
        end()
        const stored = await target.get(record.key)
        if (stored?.channelId.toLowerCase() === id) await target.delete(record.key)
      },
    }
    return leaseOf
  }

  return {
    async free(origin, key) {
      const records: ChannelRecord[] = []
      for (const from of store.forOrigin ? [origin, undefined] : [undefined]) {
        const entry = await namespace(from).get(key)
        if (entry && !leased.has(entry.channelId.toLowerCase()))
          records.push({
            origin: from,
            key,
            entry,
            // The mark is written before each voucher: what it says was signed, at most.
            ledger:
              from === undefined && store.forOrigin
                ? undefined
                : {
                    mark: entry.cumulativeAmount,
                    signed: entry.cumulativeAmount,
                    spent: entry.cumulativeAmount,
                    lease: undefined,
                    openingUntil: undefined,
                  },
          })
      }
      return records
    },
    async claim(record, { origin, tally }) {
      const id = record.entry.channelId.toLowerCase()
      if (leased.has(id)) return undefined
      const stored = await namespace(record.origin).get(record.key)
      if (stored?.channelId.toLowerCase() !== id) return undefined
      if (record.origin !== origin) {
        await namespace(origin).set(stored)
        await namespace(record.origin).delete(record.key)
      }
      return lease({ ...record, entry: stored }, origin, tally)
    },
    async add(entry, { origin, tally }) {
      await namespace(origin).set(entry)
      const record: ChannelRecord = { origin, key: entryKey(entry), entry, ledger: undefined }
      return lease(record, origin, tally)
    },
    async put(entry, { origin }) {
      const target = namespace(origin)
      if (await target.get(entryKey(entry))) return false
      await target.set(entry)
      return true
    },
  }
}
