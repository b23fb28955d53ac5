import { entryKey } from 'mppx/client'
import type { ChannelEntry, ChannelPool, ChannelRecord } from '../../stores/ChannelStore.js'
import { entryJson } from '../../stores/entryJson.js'
import { type LeaseContext, type LeaseStart, leaseOn } from './lease.js'
import {
  type ChannelRow,
  canonicalKey,
  pooledKey,
  pooledRange,
  readRow,
  type StoredChannel,
  scopeOf,
  states,
} from './rows.js'
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

  const fail = (error: unknown, channelId?: string) => storeError(error, { path, channelId })
  const guarded = <value>(fn: () => value, channelId?: string): value => {
    try {
      return transaction(database, fn)
    } catch (error) {
      throw fail(error, channelId)
    }
  }
  const read = (row: unknown) => readRow(row as ChannelRow, path)
  const scopeRows = (namespace: string, key: string) => {
    const [low, high] = pooledRange(namespace, key)
    return statements.scope.all(canonicalKey(namespace, key), low, high).map(read)
  }
  const byId = (channelId: string) => {
    const row = statements.byId.get(channelId)
    return row === undefined ? undefined : read(row)
  }

  /** The `scope_key` a channel new to a scope gets: mppx's own if free, else a pooled one. */
  const placeIn = (namespace: string, key: string, channelId: string) => {
    const canonical = canonicalKey(namespace, key)
    return statements.scopeTaken.get(canonical) ? pooledKey(namespace, key, channelId) : canonical
  }
  /** After the canonical row of a scope left: its first pooled channel takes its place. */
  const promote = (namespace: string, key: string) => {
    const canonical = canonicalKey(namespace, key)
    if (statements.scopeTaken.get(canonical)) return
    const [low, high] = pooledRange(namespace, key)
    const next = statements.firstPooled.get(low, high) as { channel_id: string } | undefined
    if (next) statements.move.run(canonical, originColumn(namespace), namespace, next.channel_id)
  }
  /**
   * The canonical row is what mppx, mpp-rs and Foundry read: once the channel `channelId` changed
   * state, a usable channel of its scope takes that row from one that is not (an open that
   * failed, a channel set aside as unknown to the server), which moves to the pool.
   */
  const reorder = (channelId: string) => {
    const stored = byId(channelId)
    if (!stored) return
    const { namespace } = stored
    const { key } = stored.record
    const canonical = canonicalKey(namespace, key)
    const first = statements.canonicalRow.get(canonical) as
      | { channel_id: string; state: string }
      | undefined
    if (!first || first.state === states.active) return
    const [low, high] = pooledRange(namespace, key)
    const usable = statements.firstActivePooled.get(low, high, states.active) as
      | { channel_id: string }
      | undefined
    if (!usable) return
    const column = originColumn(namespace)
    statements.move.run(
      pooledKey(namespace, key, first.channel_id),
      column,
      namespace,
      first.channel_id,
    )
    statements.move.run(canonical, column, namespace, usable.channel_id)
  }
  /** Read by its `scope_key` alone, so that a row another tool damaged can still be removed. */
  const erase = (channelId: string) => {
    const row = statements.scopeKeyOf.get(channelId) as { scope_key: string | null } | undefined
    statements.deleteChannel.run(channelId)
    statements.deleteLedger.run(channelId)
    if (typeof row?.scope_key !== 'string') return
    const { namespace, key } = scopeOf(row.scope_key)
    promote(namespace, key)
  }
  const insert = (entry: ChannelEntry, namespace: string, state: string) => {
    const now = Math.floor(Date.now() / 1000)
    const key = entryKey(entry)
    const { descriptor } = entry
    statements.insert.run(
      entry.channelId,
      placeIn(namespace, key, entry.channelId),
      originColumn(namespace),
      namespace,
      entry.chainId,
      entry.escrow,
      descriptor.token,
      descriptor.payee,
      descriptor.payer,
      descriptor.authorizedSigner,
      descriptor.salt,
      JSON.stringify(descriptor),
      entryJson(entry),
      entry.deposit.toString(),
      entry.cumulativeAmount.toString(),
      state,
      now,
      now,
    )
  }

  const context: LeaseContext = { database, path, statements, byId, erase, reorder, held }
  /** Takes a lease in a transaction, starting its renewal once the lease is committed. */
  const takeLease = (channelId: string, take: () => ReturnType<typeof leaseOn> | undefined) => {
    const taken = guarded(take, channelId)
    taken?.start()
    return taken?.lease
  }

  return {
    async free(origin, key) {
      try {
        return [...scopeRows(origin, key), ...scopeRows('', key)]
          .filter((stored) => usable(stored.state) && !stored.leased)
          .map(({ record }) => record)
      } catch (error) {
        throw fail(error)
      }
    },
    async claim(record, { origin: target, tally }) {
      return takeLease(record.entry.channelId, () => {
        const stored = byId(record.entry.channelId)
        if (!stored || stored.leased || !usable(stored.state)) return undefined
        // Gone from where it was listed, to another origin since: that origin's now.
        if (stored.namespace !== (record.origin ?? '') && stored.namespace !== target)
          return undefined
        if (stored.namespace !== target) {
          statements.move.run(
            placeIn(target, stored.record.key, stored.channelId),
            originColumn(target),
            target,
            stored.channelId,
          )
          promote(stored.namespace, stored.record.key)
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
      })
    },
    async add(entry, { openingUntil, origin, tally }) {
      const lease = takeLease(entry.channelId, () => {
        insert(entry, origin, entry.opened ? states.active : states.opening)
        const stored = byId(entry.channelId) as StoredChannel
        const start = { mark: entry.cumulativeAmount, signed: 0n, spent: 0n, openingUntil }
        return leaseOn(context, stored, tally, start)
      })
      return lease as NonNullable<typeof lease>
    },
    async put(entry, { origin }) {
      return guarded(() => {
        if (byId(entry.channelId)) return false
        insert(entry, origin ?? '', states.active)
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
        return statements.all.all().map((row) => read(row).record)
      } catch (error) {
        throw fail(error)
      }
    },
  }
}

/** mppx's `origin` column: the namespace's origin, or the namespace itself (`''`). */
function originColumn(namespace: string) {
  try {
    return new URL(namespace).origin
  } catch {
    return namespace
  }
}

/** Whether a channel in `state` can be paid on: opened, or its open not known to have failed. */
function usable(state: string) {
  return state === states.active || state === states.opening
}
