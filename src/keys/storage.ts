import type { Address, Hex } from 'viem'
import { AccessKeyError } from './errors.js'

/**
 * One in-page access key as it is kept: its WebCrypto private key (a non-extractable
 * `CryptoKey`, which IndexedDB stores without its bytes ever being readable by script), its
 * public key, the root wallet it signs for, and the root's signed key authorization
 * (`KeyAuthorization.serialize` of ox/tempo), which carries the chain, expiry and limits.
 */
export type StoredAccessKey = {
  root: Address
  privateKey: CryptoKey
  publicKey: Hex
  keyAuthorization: Hex
}

/** Where in-page access keys are kept, by id (one per root wallet and chain). */
export type AccessKeyStorage = {
  get(id: string): Promise<StoredAccessKey | undefined>
  set(id: string, value: StoredAccessKey): Promise<void>
  delete(id: string): Promise<void>
}

/**
 * An {@link AccessKeyStorage} in memory: the key lives as long as the page (or process), for
 * tests and for pages that must not keep a key across reloads.
 *
 * @example
 * ```ts
 * import { createAccessKey, memoryAccessKeyStorage } from 'viem-mpp'
 *
 * const key = await createAccessKey({ root, chainId, currency, storage: memoryAccessKeyStorage() })
 * ```
 */
export function memoryAccessKeyStorage(): AccessKeyStorage {
  const entries = new Map<string, StoredAccessKey>()
  return {
    async get(id) {
      const value = entries.get(id)
      return value && { ...value }
    },
    async set(id, value) {
      entries.set(id, { ...value })
    },
    async delete(id) {
      entries.delete(id)
    },
  }
}

export type IndexedDbAccessKeyStorageParameters = {
  /** The IndexedDB database. @default 'viem-mpp' */
  database?: string | undefined
  /** The IndexedDB factory. @default globalThis.indexedDB */
  indexedDB?: IDBFactory | undefined
}

/** The object store of the database; version 1 creates it. */
const objectStore = 'accessKeys'

/**
 * An {@link AccessKeyStorage} in IndexedDB (origin-scoped, like every page storage): the key
 * survives reloads until it is forgotten or it expires. The private key is stored as the
 * non-extractable `CryptoKey` itself (structured clone), so no script, this one included, can
 * read its bytes; it can only sign with it on this origin.
 *
 * @example
 * ```ts
 * import { createAccessKey, indexedDbAccessKeyStorage } from 'viem-mpp'
 *
 * const key = await createAccessKey({
 *   root, chainId, currency,
 *   storage: indexedDbAccessKeyStorage({ database: 'my-dapp' }),
 * })
 * ```
 */
export function indexedDbAccessKeyStorage({
  database = 'viem-mpp',
  indexedDB = globalThis.indexedDB,
}: IndexedDbAccessKeyStorageParameters = {}): AccessKeyStorage {
  if (!indexedDB)
    throw new AccessKeyError({
      reason: 'unsupportedRuntime',
      details: 'globalThis.indexedDB is not available.',
    })
  let opened: Promise<IDBDatabase> | undefined
  const open = () => {
    opened ??= new Promise<IDBDatabase>((resolve, reject) => {
      const request = indexedDB.open(database, 1)
      request.onupgradeneeded = () => request.result.createObjectStore(objectStore)
      request.onsuccess = () => resolve(request.result)
      request.onerror = () => reject(request.error)
    })
    // A failed open is tried again on the next call, not cached.
    opened.catch(() => {
      opened = undefined
    })
    return opened
  }
  const run = async <value>(
    mode: IDBTransactionMode,
    operation: (store: IDBObjectStore) => IDBRequest,
  ) => {
    const db = await open()
    return new Promise<value>((resolve, reject) => {
      const transaction = db.transaction(objectStore, mode)
      const request = operation(transaction.objectStore(objectStore))
      // Resolved once the transaction is committed, so a write is durable when it returns.
      transaction.oncomplete = () => resolve(request.result as value)
      transaction.onerror = () => reject(transaction.error ?? request.error)
      transaction.onabort = () => reject(transaction.error ?? request.error)
    })
  }
  return {
    get: (id) => run<StoredAccessKey | undefined>('readonly', (store) => store.get(id)),
    set: (id, value) => run<void>('readwrite', (store) => store.put(value, id)),
    delete: (id) => run<void>('readwrite', (store) => store.delete(id)),
  }
}
