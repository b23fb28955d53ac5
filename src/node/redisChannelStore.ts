import type { ChannelStore as MppxChannelStore } from 'mppx/client'
import { entryKey } from 'mppx/client'
import type { ChannelPool, ChannelRecord, ChannelStore } from '../stores/ChannelStore.js'
import { entryJson } from '../stores/entryJson.js'
import { ChannelStoreError } from '../stores/errors.js'
import { originOf } from '../stores/origin.js'
import { thisHolder } from './holder.js'
import { type Connection, connect, type RedisClient } from './redisStore/connection.js'
import { keysOf } from './redisStore/keys.js'
import { type LeaseContext, redisLease } from './redisStore/lease.js'
import { readChannel, type StoredChannel } from './redisStore/records.js'

export type { RedisClient } from './redisStore/connection.js'

export type RedisChannelStoreConfig = {
  /**
   * A connected ioredis client (`Redis` or `Cluster`; it stays yours to close), or a `redis://` /
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
  const connection: Connection = connect(redis, timeout)
  const context: LeaseContext = { connection, keys, ttl: leaseTtl, budget, held: new Set() }
  const owned = typeof redis === 'string'
  const me = JSON.stringify(thisHolder())
  /** What `free` read of each record it returned: a claim checks that nothing moved since. */
  const seen = new WeakMap<ChannelRecord, StoredChannel>()

  const read = async (sets: string[]) => {
    const [now, rows] = await connection.run('read', [keys.channelPrefix, ...sets], [])
    return (rows as unknown[]).map((row) => readChannel(row, Number(now), connection.location))
  }
  const scopes = (origin: string, key: string) => [
    keys.scope(origin, key),
    keys.scope(undefined, key),
  ]
  const holding = () => {
    watchExit()
    return me
  }

  const pool: ChannelPool = {
    async free(origin, key) {
      const channels = await read(scopes(originOf(origin), key))
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
        (await read(scopes(origin, record.key))).find((channel) => channel.id === id)
      if (!stored) return undefined
      const sentAt = Date.now()
      const [status, fence] = await connection.run(
        'claim',
        [keys.channel(id), keys.scope(record.origin, record.key), keys.scope(origin, record.key)],
        [
          id,
          stored.fence,
          stored.holderDead ? '1' : '0',
          String(leaseTtl),
          holding(),
          record.origin ?? '',
          origin,
        ],
      )
      if (status !== 'ok') return undefined
      return redisLease(context, {
        record: { ...stored.record, origin },
        fence: String(fence),
        sentAt,
        tally,
      })
    },
    async add(entry, { origin: target, tally, openingUntil }) {
      const origin = originOf(target)
      const id = entry.channelId.toLowerCase()
      const key = entryKey(entry)
      const sentAt = Date.now()
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
          String(leaseTtl),
          holding(),
          budget === undefined ? '' : String(budget),
        ],
      )
      if (status === 'budget')
        throw new ChannelStoreError({
          reason: 'budget',
          path: connection.location,
          channelId: id,
          left: BigInt(String(fence)),
        })
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

  /** mppx's one-entry-per-key interface over the scope of `origin` (`''`: the store's own). */
  const namespaced = (origin: string): MppxChannelStore => {
    const first = async (key: string) => {
      const channels = await read([keys.scope(origin, key)])
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

  /** Ends every lease held here (each in turn: one failing does not keep the others). */
  const releaseAll = async () => {
    const failures: unknown[] = []
    for (const release of [...context.held]) await release().catch((error) => failures.push(error))
    if (failures.length > 0) throw failures[0]
  }
  let watching = false
  /**
   * When the process has nothing left to do, the leases still held end (their ledgers written
   * exactly) and a connection the store made closes, so that the process can exit. A process
   * that is killed leaves its leases to run out (or, on this host, to be found dead).
   */
  const onBeforeExit = () => {
    if (context.held.size === 0 && !owned) return unwatch()
    releaseAll()
      .catch(() => {})
      .finally(() => {
        if (owned) connection.close().catch(() => {})
        unwatch()
      })
  }
  const watchExit = () => {
    if (watching) return
    watching = true
    process.on('beforeExit', onBeforeExit)
  }
  const unwatch = () => {
    watching = false
    process.off('beforeExit', onBeforeExit)
  }

  return {
    ...namespaced(''),
    forOrigin: (origin) => namespaced(originOf(origin)),
    pool,
    location: connection.location,
    list: async () => (await read([keys.all])).map(({ record }) => record),
    async committed() {
      const [total] = await connection.run('committed', [keys.committed], [])
      return BigInt(String(total))
    },
    async close() {
      try {
        await releaseAll()
      } finally {
        unwatch()
        await connection.close()
      }
    },
  }
}
