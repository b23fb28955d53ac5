import { createChannelStore, createJsonChannelStore } from 'mppx/client'
import { describe, expect, test, vi } from 'vitest'
import {
  type ChannelStorage,
  type ChannelStore,
  ChannelStoreError,
  localStorageChannelStore,
  memoryChannelStore,
} from '../../src/index.js'
import { entry, key, poolContract, secretUrl } from '../support/poolContract.js'

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
] as const)('%s pool', (_, stores) => poolContract(stores))

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
