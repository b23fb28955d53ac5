import { ChannelStoreError } from '../../stores/errors.js'
import type { Connection } from './connection.js'
import type { Keys } from './keys.js'
import { readChannel, type StoredChannel } from './records.js'

/** What the parts of one Redis store share. */
export type StoreContext = {
  connection: Connection
  keys: Keys
  /** How long a lease lasts unless renewed (ms, on the Redis clock). */
  ttl: number
  /** The fleet budget (base units), if the store has one. */
  budget: bigint | undefined
  /** What ends each lease held through the store, exactly (on `close`, and at exit). */
  held: Set<() => Promise<void>>
  /** This process as a lease holder (JSON), for a claim or an add; called as a lease is taken. */
  holder(): string
}

/**
 * The channels of the sorted sets `sets` (scopes, or the whole store), read in one script, with
 * the Redis clock they are judged by.
 *
 * @example
 * ```ts
 * const channels = await readChannels(context, [context.keys.all])
 * ```
 */
export async function readChannels(
  { connection, keys }: Pick<StoreContext, 'connection' | 'keys'>,
  sets: readonly string[],
): Promise<StoredChannel[]> {
  const [now, rows] = await connection.run('read', [keys.channelPrefix, ...sets], [])
  return (rows as unknown[]).map((row) => readChannel(row, Number(now), connection.location))
}

/**
 * A script's `budget` answer as the error it is: the fleet budget has `left` (base units), less
 * than the mark needs; nothing was written.
 *
 * @example
 * ```ts
 * if (status === 'budget') throw budgetRefused(connection, channelId, left)
 * ```
 */
export function budgetRefused(connection: Connection, channelId: string, left: unknown) {
  return new ChannelStoreError({
    reason: 'budget',
    path: connection.location,
    channelId,
    left: BigInt(String(left)),
  })
}

/** The fleet budget as a script argument (`''`: none). */
export function budgetArgument(budget: bigint | undefined) {
  return budget === undefined ? '' : String(budget)
}
