import type { ChannelStore as MppxChannelStore } from 'mppx/client'
import { entryKey } from 'mppx/client'
import { entryJson } from '../../stores/entryJson.js'
import { readChannels, type StoreContext } from './context.js'

/**
 * mppx's one-entry-per-key interface over the channels of `origin` (`''`: the store's own
 * entries), for tools that know nothing of the pool: `get` reads a scope's first usable channel,
 * `set` writes an entry (its amount becomes the mark, the ledger unknown, and a lease on it ends),
 * `delete` removes the channel `get` returns.
 *
 * @example
 * ```ts
 * const entry = await redisEntries(context, 'https://rpc.example').get(key)
 * ```
 */
export function redisEntries(
  context: Pick<StoreContext, 'connection' | 'keys'>,
  origin: string,
): MppxChannelStore {
  const { connection, keys } = context

  const first = async (key: string) => {
    const channels = await readChannels(context, [keys.scope(origin, key)])
    return channels.find(({ record }) => record.entry.opened) ?? channels[0]
  }
  return {
    get: async (key) => (await first(key))?.record.entry,
    async set(entry) {
      const id = entry.channelId.toLowerCase()
      const key = entryKey(entry)
      await connection.run(
        'set',
        [keys.channel(id), keys.scope(origin, key), keys.all, keys.order],
        [id, origin, key, entryJson(entry), String(entry.cumulativeAmount)],
      )
    },
    async delete(key) {
      const stored = await first(key)
      if (stored)
        await connection.run(
          'delete',
          [keys.channel(stored.id), keys.scope(origin, key), keys.all],
          [stored.id],
        )
    },
  }
}
