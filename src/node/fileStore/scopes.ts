import { entryKey } from 'mppx/client'
import type { ChannelEntry } from '../../stores/ChannelStore.js'
import { entryJson } from '../../stores/entryJson.js'
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
import type { Statements } from './statements.js'

/**
 * What the scope functions of a {@link sqlitePool} work through: its prepared statements, and
 * the file's path, which every error names.
 */
export type ChannelTables = { statements: Statements; path: string }

/**
 * A row as the pool reads it, checked: a row that does not read is an error naming the file.
 *
 * @example
 * ```ts
 * const records = statements.all.all().map((row) => storedRow(tables, row).record)
 * ```
 */
export function storedRow({ path }: Pick<ChannelTables, 'path'>, row: unknown): StoredChannel {
  return readRow(row as ChannelRow, path)
}

/**
 * The channels of a scope in one namespace: its canonical row and its pooled ones, in the order
 * they were written.
 *
 * @example
 * ```ts
 * const rows = [...scopeRows(tables, origin, key), ...scopeRows(tables, '', key)]
 * ```
 */
export function scopeRows(tables: ChannelTables, namespace: string, key: string): StoredChannel[] {
  const [low, high] = pooledRange(namespace, key)
  return tables.statements.scope
    .all(canonicalKey(namespace, key), low, high)
    .map((row) => storedRow(tables, row))
}

/**
 * The channel's row, read and checked (`undefined` if gone), found whatever case its id was
 * written in.
 *
 * @example
 * ```ts
 * const stored = channelById(tables, entry.channelId)
 * ```
 */
export function channelById(tables: ChannelTables, channelId: string): StoredChannel | undefined {
  const row = tables.statements.byId.get(channelId)
  return row === undefined ? undefined : storedRow(tables, row)
}

/**
 * The `scope_key` a channel new to a scope gets: mppx's own if free, else a pooled one.
 *
 * @example
 * ```ts
 * statements.move.run(placeIn(tables, target, key, channelId), originColumn(target), target, channelId)
 * ```
 */
export function placeIn(
  { statements }: ChannelTables,
  namespace: string,
  key: string,
  channelId: string,
): string {
  const canonical = canonicalKey(namespace, key)
  return statements.scopeTaken.get(canonical) ? pooledKey(namespace, key, channelId) : canonical
}

/**
 * After the canonical row of a scope left: its first pooled channel takes its place.
 *
 * @example
 * ```ts
 * promote(tables, stored.namespace, stored.record.key)
 * ```
 */
export function promote({ statements }: ChannelTables, namespace: string, key: string): void {
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
 *
 * @example
 * ```ts
 * if (opened !== undefined) reorder(tables, channelId)
 * ```
 */
export function reorder(tables: ChannelTables, channelId: string): void {
  const { statements } = tables
  const stored = channelById(tables, channelId)
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

/**
 * Deletes the channel's row and ledger; the scope's next channel takes its place. Read by its
 * `scope_key` alone, so that a row another tool damaged can still be removed.
 *
 * @example
 * ```ts
 * if (now().leaseId === leaseId) erase(tables, channelId)
 * ```
 */
export function erase(tables: ChannelTables, channelId: string): void {
  const { statements } = tables
  const row = statements.scopeKeyOf.get(channelId) as { scope_key: string | null } | undefined
  statements.deleteChannel.run(channelId)
  statements.deleteLedger.run(channelId)
  if (typeof row?.scope_key !== 'string') return
  const { namespace, key } = scopeOf(row.scope_key)
  promote(tables, namespace, key)
}

/**
 * Writes a channel new to the store in mppx's own columns, so that mppx, mpp-rs and Foundry read
 * it too: at its scope's canonical row if that is free, else in the scope's pool.
 *
 * @example
 * ```ts
 * insertChannel(tables, entry, origin, entry.opened ? states.active : states.opening)
 * ```
 */
export function insertChannel(
  tables: ChannelTables,
  entry: ChannelEntry,
  namespace: string,
  state: string,
): void {
  const now = Math.floor(Date.now() / 1000)
  const key = entryKey(entry)
  const { descriptor } = entry
  tables.statements.insert.run(
    entry.channelId,
    placeIn(tables, namespace, key, entry.channelId),
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

/**
 * mppx's `origin` column: the namespace's origin, or the namespace itself (`''`).
 *
 * @example
 * ```ts
 * originColumn('https://rpc.example/v1') // 'https://rpc.example'
 * ```
 */
export function originColumn(namespace: string): string {
  try {
    return new URL(namespace).origin
  } catch {
    return namespace
  }
}
