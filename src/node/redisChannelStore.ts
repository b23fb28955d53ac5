import type { ChannelStore } from '../stores/ChannelStore.js'
import { ChannelStoreError } from '../stores/errors.js'
import { originOf } from '../stores/origin.js'
import { thisHolder } from './holder.js'
import { connect, type RedisClient } from './redisStore/connection.js'
import { readChannels, type StoreContext } from './redisStore/context.js'
import { redisEntries } from './redisStore/entries.js'
import { leasesEnd } from './redisStore/exit.js'
import { keysOf } from './redisStore/keys.js'
import { redisPool } from './redisStore/pool.js'

export type { RedisClient } from './redisStore/connection.js'

export type RedisChannelStoreConfig = {
  /**
   * A connected ioredis client (`Redis` or `Cluster`; it stays yours to close; give it
   * `enableOfflineQueue: false`, so that no command queued while it is disconnected runs late —
   * the store waits for it to be `ready` within `timeout` anyway), or a `redis://` /
   * `rediss://` URL, for which the store makes its own client (ioredis, an optional peer
   * dependency, is then loaded on first use) and closes it on {@link RedisChannelStore.close} or
   * when the process has nothing left to do.
   */
  redis: RedisClient | string
  /**
   * Names the store: stores with different prefixes on one Redis share nothing. Any string but an
   * empty one (characters other than letters, digits and `.-_` are escaped). @default 'viem-mpp'
   */
  prefix?: string | undefined
  /**
   * How long a lease lasts unless renewed (ms): how long the channel of a holder that stopped
   * without releasing it (killed, cut off from Redis) stays out of use. A holder renews its lease
   * every third of it. A holder on the same host that no longer runs frees its channels at once.
   * @default 15_000
   */
  leaseTtl?: number | undefined
  /**
   * How long a Redis command may take (ms) before the store reports it unavailable.
   * @default 5_000
   */
  timeout?: number | undefined
  /**
   * A budget for every process using this store (base units of the channels' token): the marks
   * written ahead on its channels, less what each released lease gives back, never exceed it, so
   * no voucher above it is ever signed by the fleet. A payment it cannot cover is refused
   * (`PaymentRefusedError`, reason `fleetBudget`) before anything is signed. Give every process
   * the same figure.
   */
  budget?: bigint | undefined
}

/** A {@link redisChannelStore}: a {@link ChannelStore} with its origins, pool and connection. */
export type RedisChannelStore = ChannelStore &
  Required<Pick<ChannelStore, 'forOrigin' | 'list' | 'pool'>> & {
    /** Where the store is, safe to show (`redis://host:port/db`, never a password). */
    readonly location: string
    /**
     * What the fleet has committed on the store's channels (base units): the marks written ahead,
     * less what released leases gave back; at least every voucher signed through the store.
     */
    committed(): Promise<bigint>
    /** Ends the leases this process holds (their ledgers written exactly), then the connection if the store made it. */
    close(): Promise<void>
  }

/**
 * A {@link ChannelStore} on Redis or Valkey, for a fleet: every process (on any machine) that
 * uses the same Redis and `prefix` shares one pool of channels. Each channel is leased by one
 * process at a time, with a TTL (renewed while the process runs) and a fencing token (a holder
 * whose lease was taken over can write nothing more); taking a free channel is one atomic script;
 * each channel's voucher ledger is its hash, the mark written ahead several calls at a time.
 * While Redis cannot be reached, payments stop with a {@link ChannelStoreError} (`unavailable`)
 * before anything is signed above the mark; unpaid calls go on; they resume on the same channels
 * when it answers.
 *
 * @example
 * ```ts
 * import { session } from 'viem-mpp'
 * import { redisChannelStore } from 'viem-mpp/node'
 *
 * const store = redisChannelStore({ redis: process.env.REDIS_URL! })
 * const provider = session({ account, client, store })
 * ```
 */
export function redisChannelStore({
  redis,
  prefix = 'viem-mpp',
  leaseTtl = 15_000,
  timeout = 5_000,
  budget,
}: RedisChannelStoreConfig): RedisChannelStore {
  const keys = keysOf(prefix)
  for (const [name, value] of [
    ['leaseTtl', leaseTtl],
    ['timeout', timeout],
  ] as const)
    if (!Number.isSafeInteger(value) || value <= 0)
      throw new ChannelStoreError({
        reason: 'invalidOptions',
        cause: new Error(`redisChannelStore: \`${name}\` must be a positive number of ms.`),
      })
  if (budget !== undefined && (typeof budget !== 'bigint' || budget < 0n))
    throw new ChannelStoreError({
      reason: 'invalidOptions',
      cause: new Error('redisChannelStore: `budget` must be a bigint of at least 0.'),
    })
  const connection = connect(redis, timeout)
  const me = JSON.stringify(thisHolder())
  const held: StoreContext['held'] = new Set()
  const exit = leasesEnd({ held, connection }, { owned: typeof redis === 'string' })
  const context: StoreContext = {
    connection,
    keys,
    ttl: leaseTtl,
    budget,
    held,
    holder() {
      exit.watch()
      return me
    },
  }

  return {
    ...redisEntries(context, ''),
    forOrigin: (origin) => redisEntries(context, originOf(origin)),
    pool: redisPool(context),
    location: connection.location,
    list: async () => (await readChannels(context, [keys.all])).map(({ record }) => record),
    async committed() {
      const [total] = await connection.run('committed', [keys.committed], [])
      return BigInt(String(total))
    },
    async close() {
      try {
        await exit.releaseAll()
      } finally {
        exit.unwatch()
        await connection.close()
      }
    },
  }
}
