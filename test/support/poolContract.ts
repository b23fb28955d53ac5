/**
 * What every channel pool must do, whatever its backend: run inside a `describe` with a function
 * that makes one store, or two over one backend (two processes, two tabs).
 */
import { entryKey } from 'mppx/client'
import { expect, test } from 'vitest'
import type { ChannelEntry, ChannelStore } from '../../src/index.js'
import type { ChannelLease, ChannelPool, LedgerTally } from '../../src/stores/ChannelStore.js'

/** A store with a pool, as every viem-mpp store is. */
export type ChannelStoreWithPool = ChannelStore & Required<Pick<ChannelStore, 'forOrigin' | 'pool'>>

export const entry: ChannelEntry = {
  channelId: `0x${'c1'.repeat(32)}`,
  cumulativeAmount: 12_345_678_901_234_567_890n,
  deposit: 50_000_000n,
  descriptor: {
    payer: '0x1111111111111111111111111111111111111111',
    payee: '0xAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAa',
    operator: '0x0000000000000000000000000000000000000000',
    token: '0x20C0000000000000000000000000000000000000',
    salt: `0x${'5a'.repeat(32)}`,
    authorizedSigner: '0x2222222222222222222222222222222222222222',
    expiringNonceHash: `0x${'e7'.repeat(32)}`,
  },
  escrow: '0x4D50500000000000000000000000000000000000',
  chainId: 31337,
  opened: true,
}
export const key = entryKey(entry)
export const secretUrl = 'https://user:pw@rpc.example:8443/v1/KEY-123?apikey=SECRET-456'
export const origin = 'https://rpc.example:8443'
/** A second channel of the entry's scope. */
export const second: ChannelEntry = {
  ...entry,
  channelId: `0x${'c3'.repeat(32)}`,
  cumulativeAmount: 0n,
}

/** What a session provider does for a call: a free channel of the scope if it gets one, else a new one. */
export async function acquire(pool: ChannelPool, fresh: ChannelEntry, tally: () => LedgerTally) {
  for (const record of await pool.free(secretUrl, key)) {
    const lease = await pool.claim(record, { origin: secretUrl, tally })
    if (lease) return lease
  }
  return pool.add({ ...fresh, opened: false }, { origin: secretUrl, tally, openingUntil: 1 })
}

/**
 * The contract's tests, for stores made by `stores` (one, or two sharing a backend).
 *
 * @example
 * ```ts
 * describe('memoryChannelStore pool', () => poolContract(() => [memoryChannelStore()]))
 * ```
 */
export function poolContract(
  stores: () => readonly ChannelStoreWithPool[] | Promise<readonly ChannelStoreWithPool[]>,
) {
  test('a channel is leased by one holder at a time; release writes its ledger exactly', async () => {
    const [store] = (await stores()) as [ChannelStoreWithPool]
    const tally = () => ({ signed: entry.cumulativeAmount + 4n, spent: 3n })
    expect(await store.pool.put(entry, { origin })).toBe(true)
    expect(await store.pool.put(entry, { origin })).toBe(false)
    const [record] = await store.pool.free(secretUrl, key)
    if (!record) throw new Error('no free channel')

    const claims = await Promise.all([
      store.pool.claim(record, { origin, tally }),
      store.pool.claim(record, { origin, tally }),
    ])
    const leases = claims.filter((lease): lease is ChannelLease => lease !== undefined)
    expect(leases).toHaveLength(1)
    expect(await store.pool.free(origin, key)).toEqual([])
    expect(await store.pool.claim(record, { origin, tally })).toBeUndefined()

    await leases[0]?.raise(entry.cumulativeAmount + 10n)
    expect((await store.forOrigin(origin).get(key))?.cumulativeAmount).toBe(
      entry.cumulativeAmount + 10n,
    )
    await leases[0]?.release()
    expect(await store.pool.free(origin, key)).toEqual([
      {
        origin,
        key,
        entry: { ...entry, cumulativeAmount: entry.cumulativeAmount + 4n },
        ledger: {
          mark: entry.cumulativeAmount + 4n,
          signed: entry.cumulativeAmount + 4n,
          spent: 3n,
          lease: undefined,
          openingUntil: undefined,
        },
      },
    ])
  })

  test('two providers sharing the store pay on two channels; the first stays where mppx reads it', async () => {
    const [first, other = first] = (await stores()) as [ChannelStoreWithPool, ChannelStoreWithPool?]
    const tally = () => ({ signed: 0n, spent: 0n })
    await first.pool.put(entry, { origin })
    // Both look for a free channel at the same moment: one takes the stored one, one opens another.
    const leases = await Promise.all([
      acquire(first.pool, second, tally),
      acquire(other.pool, second, tally),
    ])
    expect(leases.map(({ record }) => record.entry.channelId).sort()).toEqual([
      entry.channelId,
      second.channelId,
    ])
    expect(await first.forOrigin(origin).get(key)).toEqual(entry)
    expect(await first.pool.free(origin, key)).toEqual([])

    // The new channel's open landed; both providers are done.
    for (const lease of leases) if (!lease.record.entry.opened) await lease.update({ opened: true })
    await Promise.all(leases.map((lease) => lease.release()))
    expect((await other.pool.free(origin, key)).map(({ entry }) => entry.channelId)).toEqual([
      entry.channelId,
      second.channelId,
    ])
  })
}
