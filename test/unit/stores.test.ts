import { createChannelStore, createJsonChannelStore, entryKey } from 'mppx/client'
import { describe, expect, test, vi } from 'vitest'
import {
  type ChannelEntry,
  type ChannelStorage,
  type ChannelStore,
  ChannelStoreError,
  localStorageChannelStore,
  memoryChannelStore,
} from '../../src/index.js'
import type { ChannelLease, ChannelPool, LedgerTally } from '../../src/stores/ChannelStore.js'

const entry: ChannelEntry = {
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
const key = entryKey(entry)

/** A Web Storage stand-in over a Map, so that the test sees every key and value written. */
function mapStorage() {
  const items = new Map<string, string>()
  const storage: ChannelStorage = {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  }
  return { items, storage }
}

const secretUrl = 'https://user:pw@rpc.example:8443/v1/KEY-123?apikey=SECRET-456'

describe('memoryChannelStore', () => {
  test('get and set copy entries: mutating one held changes nothing stored', async () => {
    const store = memoryChannelStore()
    const written = structuredClone(entry)
    await store.set(written)
    written.cumulativeAmount = 1n
    written.descriptor.payee = '0x0000000000000000000000000000000000000000'

    const read = await store.get(key)
    expect(read).toEqual(entry)
    if (!read) throw new Error('no entry')
    read.cumulativeAmount = 2n
    read.opened = false
    expect(await store.get(key)).toEqual(entry)
    expect(await store.get(key)).not.toBe(await store.get(key))
  })

  test('per origin: each origin and the store itself are separate namespaces', async () => {
    const store = memoryChannelStore()
    const a = store.forOrigin?.('https://a.example')
    const b = store.forOrigin?.('https://b.example')
    await a?.set(entry)
    await b?.set({ ...entry, cumulativeAmount: 7n })

    expect(await a?.get(key)).toEqual(entry)
    expect((await b?.get(key))?.cumulativeAmount).toBe(7n)
    expect(await store.get(key)).toBeUndefined()
    expect(await store.forOrigin?.('https://c.example').get(key)).toBeUndefined()
    // The same origin is the same namespace, on every call.
    expect(await store.forOrigin?.('https://a.example').get(key)).toEqual(entry)

    await a?.delete(key)
    expect(await a?.get(key)).toBeUndefined()
    expect((await b?.get(key))?.cumulativeAmount).toBe(7n)
  })

  test("a URL's path, query and userinfo do not make another namespace", async () => {
    const store = memoryChannelStore()
    await store.forOrigin?.(secretUrl).set(entry)
    expect(await store.forOrigin?.('https://rpc.example:8443').get(key)).toEqual(entry)
  })
})

describe('localStorageChannelStore', () => {
  test('round-trips entries, bigints included, under origin-prefixed keys only', async () => {
    const { items, storage } = mapStorage()
    const store = localStorageChannelStore(storage)
    await store.forOrigin?.(secretUrl).set(entry)

    expect([...items.keys()]).toEqual([`viem-mpp:https://rpc.example:8443:chan:${key}`])
    const stored = [...items].flat().join('\n')
    for (const secret of ['user', 'pw@', '/v1', 'KEY-123', 'apikey', 'SECRET-456'])
      expect(stored).not.toContain(secret)
    expect(await store.forOrigin?.('https://rpc.example:8443').get(key)).toEqual(entry)
  })

  test('a new store over the same storage reads what an earlier one wrote (a page reload)', async () => {
    const { storage } = mapStorage()
    await localStorageChannelStore(storage).forOrigin?.('https://a.example').set(entry)
    const reloaded = localStorageChannelStore(storage)
    expect(await reloaded.forOrigin?.('https://a.example').get(key)).toEqual(entry)
  })

  test('entries read are copies', async () => {
    const { storage } = mapStorage()
    const store = localStorageChannelStore(storage)
    await store.set(entry)
    const read = await store.get(key)
    if (!read) throw new Error('no entry')
    read.cumulativeAmount = 1n
    expect(await store.get(key)).toEqual(entry)
  })

  test('per origin: each origin and the store itself are separate namespaces', async () => {
    const { items, storage } = mapStorage()
    const store = localStorageChannelStore(storage)
    const a = store.forOrigin?.('https://a.example')
    await a?.set(entry)
    await store.forOrigin?.('https://b.example').set({ ...entry, deposit: 9n })
    await store.set({ ...entry, deposit: 3n })

    expect(await a?.get(key)).toEqual(entry)
    expect((await store.forOrigin?.('https://b.example').get(key))?.deposit).toBe(9n)
    expect((await store.get(key))?.deposit).toBe(3n)
    expect(items.size).toBe(3)

    await a?.delete(key)
    expect(await a?.get(key)).toBeUndefined()
    expect(items.size).toBe(2)
  })

  test('without a storage and no globalThis.localStorage: a ChannelStoreError', () => {
    vi.stubGlobal('localStorage', undefined)
    try {
      expect(() => localStorageChannelStore()).toThrow(ChannelStoreError)
      expect(() => localStorageChannelStore()).toThrow(
        'localStorageChannelStore needs a Web Storage: globalThis.localStorage is not available.',
      )
    } finally {
      vi.unstubAllGlobals()
    }
  })

  test('uses globalThis.localStorage by default', async () => {
    const { items, storage } = mapStorage()
    vi.stubGlobal('localStorage', storage)
    try {
      await localStorageChannelStore().forOrigin?.('https://a.example').set(entry)
      expect([...items.keys()]).toEqual([`viem-mpp:https://a.example:chan:${key}`])
    } finally {
      vi.unstubAllGlobals()
    }
  })
})

const origin = 'https://rpc.example:8443'
type ChannelStoreWithPool = ReturnType<typeof localStorageChannelStore>
/** A second channel of the entry's scope. */
const second: ChannelEntry = { ...entry, channelId: `0x${'c3'.repeat(32)}`, cumulativeAmount: 0n }

/** What a session provider does for a call: a free channel of the scope if it gets one, else a new one. */
async function acquire(pool: ChannelPool, fresh: ChannelEntry, tally: () => LedgerTally) {
  for (const record of await pool.free(secretUrl, key)) {
    const lease = await pool.claim(record, { origin: secretUrl, tally })
    if (lease) return lease
  }
  return pool.add({ ...fresh, opened: false }, { origin: secretUrl, tally, openingUntil: 1 })
}

describe.each([
  ['memoryChannelStore', () => [memoryChannelStore()]],
  [
    // Two stores over one storage (two sessions of a page) share its leases.
    'localStorageChannelStore',
    () => {
      const { storage } = mapStorage()
      return [localStorageChannelStore(storage), localStorageChannelStore(storage)]
    },
  ],
] as const)('%s pool', (_, stores) => {
  test('a channel is leased by one holder at a time; release writes its ledger exactly', async () => {
    const [store] = stores() as [ChannelStoreWithPool]
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
    const [first, other = first] = stores() as [ChannelStoreWithPool, ChannelStoreWithPool?]
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
})

describe("mppx's own stores", () => {
  test("mppx's createChannelStore plugs in unchanged as a ChannelStore", async () => {
    const store: ChannelStore = createChannelStore()
    await store.set(entry)
    expect(await store.get(key)).toEqual(entry)
    expect(store.forOrigin).toBeUndefined()
    expect(store.pool).toBeUndefined()
  })

  test("mppx's createJsonChannelStore plugs in unchanged as a ChannelStore", async () => {
    const { items, storage } = mapStorage()
    const store: ChannelStore = createJsonChannelStore({
      get: (key) => storage.getItem(key) ?? undefined,
      set: (key, value) => storage.setItem(key, value),
      delete: (key) => storage.removeItem(key),
    })
    await store.set(entry)
    expect([...items.keys()]).toEqual([`chan:${key}`])
    expect(await store.get(key)).toEqual(entry)
  })
})
