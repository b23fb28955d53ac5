import { entryKey } from 'mppx/client'
import { describe, expect, test } from 'vitest'
import {
  type ChannelEntry,
  ChannelError,
  type ChannelStorage,
  listChannels,
  localStorageChannelStore,
  memoryChannelStore,
} from '../../src/index.js'

const entry = (n: number, payer = '0x1111111111111111111111111111111111111111'): ChannelEntry => ({
  channelId: `0x${n.toString(16).padStart(2, '0').repeat(32)}`,
  cumulativeAmount: 3_000n * BigInt(n),
  deposit: 1_000_000n,
  descriptor: {
    payer: payer as `0x${string}`,
    payee: `0x${n.toString(16).padStart(2, '0').repeat(20)}`,
    operator: '0x0000000000000000000000000000000000000000',
    token: '0x20c0000000000000000000000000000000000000',
    salt: `0x${'5a'.repeat(32)}`,
    authorizedSigner: payer as `0x${string}`,
    expiringNonceHash: `0x${'e7'.repeat(32)}`,
  },
  escrow: '0x4d50500000000000000000000000000000000000',
  chainId: 1337,
  opened: true,
})

/** A Web Storage stand-in over a Map, with `key` and `length` as Web Storage has them. */
function mapStorage() {
  const items = new Map<string, string>()
  const storage: ChannelStorage = {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
    key: (index) => [...items.keys()][index] ?? null,
    get length() {
      return items.size
    },
  }
  return { items, storage }
}

const origin = 'https://rpc.example:8443'

describe('store list()', () => {
  for (const [name, make] of [
    ['memoryChannelStore', () => memoryChannelStore()],
    ['localStorageChannelStore', () => localStorageChannelStore(mapStorage().storage)],
  ] as const)
    test(`${name}: every origin's entries and the store's own, as they read`, async () => {
      const store = make()
      await store.forOrigin?.(`${origin}/v1/KEY?apikey=x`).set(entry(1))
      await store.forOrigin?.('http://127.0.0.1:8545').set(entry(2))
      await store.set(entry(3))
      const listed = await store.list?.()
      expect(listed?.sort((a, b) => a.key.localeCompare(b.key))).toEqual([
        { origin, key: entryKey(entry(1)), entry: entry(1) },
        { origin: 'http://127.0.0.1:8545', key: entryKey(entry(2)), entry: entry(2) },
        { origin: undefined, key: entryKey(entry(3)), entry: entry(3) },
      ])
    })

  test('localStorage: other keys of the page are passed over', async () => {
    const { items, storage } = mapStorage()
    items.set('theme', 'dark')
    items.set('viem-mpp-other', '{}')
    const store = localStorageChannelStore(storage)
    await store.forOrigin?.(origin).set(entry(1))
    expect(await store.list?.()).toEqual([{ origin, key: entryKey(entry(1)), entry: entry(1) }])
  })

  test('a Web Storage without key()/length: no list(), and listChannels says so', async () => {
    const { key: _, length: __, ...partial } = mapStorage().storage
    const store = localStorageChannelStore(partial)
    expect(store.list).toBeUndefined()
    const error = await listChannels({ store }).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(ChannelError)
    expect((error as ChannelError).reason).toBe('unsupportedStore')
  })
})

describe('listChannels without a client', () => {
  test("the store's figures; refundable is the deposit less what was signed; payer filter", async () => {
    const store = memoryChannelStore()
    await store.forOrigin?.(origin).set(entry(1))
    await store.set({
      ...entry(2, '0x3333333333333333333333333333333333333333'),
      cumulativeAmount: 2_000_000n,
    })
    const listed = await listChannels({ store })
    const one = listed.find(({ channelId }) => channelId === entry(1).channelId)
    const two = listed.find(({ channelId }) => channelId === entry(2).channelId)
    expect(one).toMatchObject({
      origin,
      deposit: 1_000_000n,
      cumulativeAmount: 3_000n,
      settledAmount: undefined,
      state: 'open',
      refundable: 997_000n,
      payee: '0x0101010101010101010101010101010101010101',
      currency: '0x20C0000000000000000000000000000000000000',
    })
    // Signed above the deposit: nothing is sure to come back.
    expect(two).toMatchObject({ origin: undefined, refundable: 0n })
    // Recovered from the chain (the store's own entries, no ledger), below the deposit: what was
    // signed on it is not known, nor what comes back.
    await store.set({
      ...entry(3, '0x3333333333333333333333333333333333333333'),
      cumulativeAmount: 0n,
    })
    const three = (await listChannels({ store })).find(
      ({ channelId }) => channelId === entry(3).channelId,
    )
    expect(three).toMatchObject({ origin: undefined, exact: false, refundable: undefined })
    expect(
      await listChannels({ store, payer: '0x3333333333333333333333333333333333333333' }),
    ).toHaveLength(2)
  })
})
