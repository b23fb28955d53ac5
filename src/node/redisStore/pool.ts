import { entryKey } from 'mppx/client'
import type { ChannelPool, ChannelRecord } from '../../stores/ChannelStore.js'
import { entryJson } from '../../stores/entryJson.js'
import { ChannelStoreError } from '../../stores/errors.js'
import { originOf } from '../../stores/origin.js'
import { budgetArgument, budgetRefused, readChannels, type StoreContext } from './context.js'
import { redisLease } from './lease.js'
import { readChannel, type StoredChannel } from './records.js'

/**
 * The {@link ChannelPool} of a Redis store: each operation one script (a claim checks the
 * channel's fencing token as `free` read it, and moves it to the origin it is used at).
 *
 * @example
 * ```ts
 * const pool = redisPool(context)
 * const [free] = await pool.free(origin, key)
 * ```
 */
export function redisPool(context: StoreContext): ChannelPool {
  const { connection, keys, budget } = context
  /** What `free` read of each record it returned: a claim checks that nothing moved since. */
  const seen = new WeakMap<ChannelRecord, StoredChannel>()
  /** The sorted sets a scope's channels are in: its origin's, and the store's own entries'. */
  const scopes = (origin: string, key: string) => [
    keys.scope(origin, key),
    keys.scope(undefined, key),
  ]

  return {
    async free(origin, key) {
      const channels = await readChannels(context, scopes(originOf(origin), key))
      return channels
        .filter(
          ({ record: { entry, ledger }, leased }) =>
            (entry.opened || ledger?.openingUntil !== undefined) && !leased,
        )
        .map((stored) => {
          seen.set(stored.record, stored)
          return stored.record
        })
    },
    async claim(record, { origin: target, tally }) {
      const origin = originOf(target)
      const id = record.entry.channelId.toLowerCase()
      const stored =
        seen.get(record) ??
        (await readChannels(context, scopes(origin, record.key))).find(
          (channel) => channel.id === id,
        )
      if (!stored) return undefined
      const sentAt = performance.now()
      const [status, fence, now, row] = await connection.run(
        'claim',
        [
          keys.channelPrefix,
          keys.scope(record.origin, record.key),
          keys.scope(origin, record.key),
          keys.order,
        ],
        [
          id,
          stored.fence,
          stored.holderDead ? '1' : '0',
          String(context.ttl),
          context.holder(),
          record.origin ?? '',
          origin,
        ],
      )
      if (status !== 'ok') return undefined
      // The channel as the claim found it: a holder may have released it since `free` read it.
      const current = readChannel(row, Number(now), connection.location)
      return redisLease(context, {
        record: { ...current.record, origin },
        fence: String(fence),
        sentAt,
        tally,
      })
    },
    async add(entry, { origin: target, tally, openingUntil }) {
      const origin = originOf(target)
      const id = entry.channelId.toLowerCase()
      const key = entryKey(entry)
      const sentAt = performance.now()
      const [status, fence] = await connection.run(
        'add',
        [keys.channel(id), keys.scope(origin, key), keys.all, keys.order, keys.committed],
        [
          id,
          origin,
          key,
          entryJson(entry),
          String(entry.cumulativeAmount),
          String(openingUntil),
          String(context.ttl),
          context.holder(),
          budgetArgument(budget),
        ],
      )
      if (status === 'budget') throw budgetRefused(connection, id, fence)
      if (status !== 'ok')
        throw new ChannelStoreError({
          reason: 'leaseLost',
          path: connection.location,
          channelId: id,
        })
      const record: ChannelRecord = { origin, key, entry, ledger: undefined }
      return redisLease(context, { record, fence: String(fence), sentAt, tally })
    },
    async put(entry, { origin }) {
      const at = origin === undefined ? '' : originOf(origin)
      const id = entry.channelId.toLowerCase()
      const key = entryKey(entry)
      const [status] = await connection.run(
        'put',
        [keys.channel(id), keys.scope(at, key), keys.all, keys.order],
        [id, at, key, entryJson(entry), String(entry.cumulativeAmount)],
      )
      return status === 'ok'
    },
  }
}
