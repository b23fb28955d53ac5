import type { ChannelPool, ChannelRecord, LedgerTally } from '../../stores/ChannelStore.js'
import { type LeaseContext, type LeaseStart, leaseOn } from './lease.js'
import { type StoredChannel, states } from './rows.js'
import {
  type ChannelTables,
  channelById,
  erase,
  insertChannel,
  originColumn,
  placeIn,
  promote,
  reorder,
  scopeRows,
  storedRow,
} from './scopes.js'
import { type Database, storeError, transaction } from './sqlite.js'
import { prepare } from './statements.js'

export { leaseTtl } from './lease.js'

/**
 * The ledger table beside mppx's `channels`: one row per channel a pool keeps a ledger of, keyed
 * by the channel row's `channel_id`. Tools that know only `channels` never read it.
 */
const schema = `CREATE TABLE IF NOT EXISTS viem_mpp_ledger (
  channel_id TEXT PRIMARY KEY,
  mark TEXT NOT NULL,
  signed TEXT NOT NULL,
  spent TEXT NOT NULL,
  lease_id TEXT,
  lease_pid INTEGER,
  lease_host TEXT,
  lease_started TEXT,
  lease_expires INTEGER,
  opening_until INTEGER
)`

/**
 * The {@link ChannelPool} of a SQLite channel database, and its `list`: several channels per
 * scope in mppx's `channels` table (the first under mppx's own `scope_key`, which mppx, mpp-rs and
 * Foundry read; further ones under {@link pooledKey}), each channel's ledger and lease in
 * `viem_mpp_ledger`. Every read-and-write is one `BEGIN IMMEDIATE` transaction, so that two
 * processes never lease one channel at once.
 *
 * @example
 * ```ts
 * const pool = sqlitePool(database, path)
 * const [free] = await pool.free('https://rpc.example', key)
 * ```
 */
export function sqlitePool(
  database: Database,
  path: string,
): ChannelPool & { list(): ChannelRecord[]; releaseAll(): void } {
  database.exec(schema)
  const held: LeaseContext['held'] = new Set()
  const statements = prepare(database)
  const tables: ChannelTables = { statements, path }

  const fail = (error: unknown, channelId?: string) => storeError(error, { path, channelId })
  const guarded = <value>(fn: () => value, channelId?: string): value => {
    try {
      return transaction(database, fn)
    } catch (error) {
      throw fail(error, channelId)
    }
  }
  const byId = (channelId: string) => channelById(tables, channelId)

  const context: LeaseContext = {
    database,
    path,
    statements,
    byId,
    erase: (channelId) => erase(tables, channelId),
    reorder: (channelId) => reorder(tables, channelId),
    held,
  }
  /** Takes a lease in a transaction, starting its renewal once the lease is committed. */
  const takeLease = (channelId: string, take: () => ReturnType<typeof leaseOn> | undefined) => {
    const taken = guarded(take, channelId)
    taken?.start()
    return taken?.lease
  }

  return {
    async free(origin, key) {
      try {
        return [...scopeRows(tables, origin, key), ...scopeRows(tables, '', key)]
          .filter((stored) => usable(stored.state) && !stored.leased)
          .map(({ record }) => record)
      } catch (error) {
        throw fail(error)
      }
    },
    async claim(record, { origin: target, tally }) {
      return takeLease(record.entry.channelId, () => claimRow(context, record, target, tally))
    },
    async add(entry, { openingUntil, origin, tally }) {
      const lease = takeLease(entry.channelId, () => {
        insertChannel(tables, entry, origin, entry.opened ? states.active : states.opening)
        const stored = byId(entry.channelId) as StoredChannel
        const start = { mark: entry.cumulativeAmount, signed: 0n, spent: 0n, openingUntil }
        return leaseOn(context, stored, tally, start)
      })
      return lease as NonNullable<typeof lease>
    },
    async put(entry, { origin }) {
      return guarded(() => {
        if (byId(entry.channelId)) return false
        insertChannel(tables, entry, origin ?? '', states.active)
        return true
      }, entry.channelId)
    },
    releaseAll() {
      // Each in turn, so that one failing write does not leave the others' leases unwritten.
      const failures: unknown[] = []
      for (const release of [...held])
        try {
          release()
        } catch (error) {
          failures.push(error)
        }
      if (failures.length > 0) throw fail(failures[0])
    },
    list() {
      try {
        return statements.all.all().map((row) => storedRow(tables, row).record)
      } catch (error) {
        throw fail(error)
      }
    },
  }
}

/**
 * Claims the channel of `record` for `target` inside the caller's transaction: `undefined` if it
 * is gone, leased or unusable by now, so that a claim never takes what `free` listed but another
 * holder took since. A channel still where it was listed, elsewhere than `target`, moves there.
 */
function claimRow(
  context: LeaseContext,
  record: ChannelRecord,
  target: string,
  tally: () => LedgerTally,
): ReturnType<typeof leaseOn> | undefined {
  const { statements } = context
  const stored = context.byId(record.entry.channelId)
  if (!stored || stored.leased || !usable(stored.state)) return undefined
  // Gone from where it was listed, to another origin since: that origin's now.
  if (stored.namespace !== (record.origin ?? '') && stored.namespace !== target) return undefined
  if (stored.namespace !== target) {
    statements.move.run(
      placeIn(context, target, stored.record.key, stored.channelId),
      originColumn(target),
      target,
      stored.channelId,
    )
    promote(context, stored.namespace, stored.record.key)
  }
  const { entry, ledger } = stored.record
  const start: LeaseStart = {
    // A channel without a believed ledger: its entry's amount is all that is known.
    mark: ledger?.mark ?? entry.cumulativeAmount,
    signed: ledger?.signed ?? 0n,
    spent: ledger?.spent ?? 0n,
    openingUntil: ledger?.openingUntil,
  }
  return leaseOn(context, stored, tally, start)
}

/** Whether a channel in `state` can be paid on: opened, or its open not known to have failed. */
function usable(state: string) {
  return state === states.active || state === states.opening
}
