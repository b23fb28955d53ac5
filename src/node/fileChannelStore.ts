import { mkdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { ChannelStore as MppxChannelStore } from 'mppx/client'
import type { SqliteChannelStore } from 'mppx/client/node'
import type { ChannelPool, ChannelStore } from '../stores/ChannelStore.js'
import { originOf } from '../stores/origin.js'
import { sqlitePool } from './fileStore/pool.js'
import {
  busyTimeout,
  type Database,
  loadSqlite,
  openMppxStore,
  storeError,
} from './fileStore/sqlite.js'
import { keysTomlPath } from './keys.js'

/** A {@link fileChannelStore}: a {@link ChannelStore} with its origins, its pool and its file. */
export type FileChannelStore = ChannelStore &
  Required<Pick<ChannelStore, 'forOrigin' | 'list' | 'pool'>> & {
    /** The SQLite database file. */
    readonly path: string
    /** Closes the database handles (the store opens them again when used). */
    close(): Promise<void>
  }

/**
 * A {@link ChannelStore} in a SQLite file, by default Tempo's shared channel database
 * `$TEMPO_HOME/wallet/channels.db` (`TEMPO_HOME` defaults to `~/.tempo`): the `channels` table that
 * mppx's `createSqliteChannelStore`, mpp-rs and Foundry use, so that a channel opened by any of
 * them is reused here, and the other way round. Only an origin is written, never a URL's path,
 * query or userinfo.
 *
 * Several processes may share it, as a pool: each channel is leased by one process at a time
 * (recorded in the file, renewed while the process lives, free at once when it dies), and each
 * channel's voucher ledger is kept in `viem_mpp_ledger` beside `channels`. The first channel of a
 * scope has mppx's own row (what the other tools read); further ones are rows whose `scope_key`
 * ends in `\n<channel id>`. Each write is a SQLite transaction (WAL): a crash mid-write loses
 * nothing. When the process exits normally, the ledgers of the channels it holds are written
 * exactly and their leases ended.
 *
 * It needs `node:sqlite` (Node >= 22.13, or 22.5 with `--experimental-sqlite`), loaded on first
 * use: on an older Node, using the store throws a {@link ChannelStoreError} that says so. A
 * database that is not SQLite, is damaged, or cannot be written throws one too, before anything
 * is signed, and is left as it is.
 *
 * @example
 * ```ts
 * import { session } from 'viem-mpp'
 * import { fileChannelStore } from 'viem-mpp/node'
 *
 * const provider = session({ account, client, store: fileChannelStore() })
 * ```
 */
export function fileChannelStore(path: string = defaultStorePath()): FileChannelStore {
  const file = resolve(path)
  const namespaces = new Map<string, Promise<SqliteChannelStore>>()
  let pooled: Promise<{ database: Database; pool: ReturnType<typeof sqlitePool> }> | undefined

  /** mppx's store for `namespace` (it creates the schema the first time). */
  const open = (namespace: string) => {
    const existing = namespaces.get(namespace)
    if (existing) return existing
    const store = loadSqlite().then(async (sqlite) => {
      try {
        return await openMppxStore(sqlite, file, namespace)
      } catch (error) {
        throw storeError(error, { path: file })
      }
    })
    namespaces.set(namespace, store)
    // A failed open is not remembered: the file may be repaired while the process runs.
    store.catch(() => namespaces.get(namespace) === store && namespaces.delete(namespace))
    return store
  }

  /** The pool, over a handle of its own on the same file. */
  const openPool = () => {
    pooled ??= (async () => {
      await open('')
      const { DatabaseSync } = await loadSqlite()
      let database: Database | undefined
      try {
        mkdirSync(dirname(file), { recursive: true })
        database = new DatabaseSync(file)
        database.exec(`PRAGMA busy_timeout = ${busyTimeout}`)
        return { database, pool: sqlitePool(database, file) }
      } catch (error) {
        // Not kept: the next use opens it again.
        database?.close()
        throw storeError(error, { path: file })
      }
    })()
    const current = pooled
    current.catch(() => {
      if (pooled === current) pooled = undefined
    })
    return current
  }

  const use = async <value>(
    namespace: string,
    action: (store: SqliteChannelStore) => value,
  ): Promise<Awaited<value>> => {
    const store = await open(namespace)
    try {
      return await action(store)
    } catch (error) {
      throw storeError(error, { path: file })
    }
  }

  const namespaced = (namespace: string): MppxChannelStore => ({
    get: (key) => use(namespace, (store) => store.get(key)),
    set: (entry) => use(namespace, (store) => store.set(entry)),
    delete: (key) => use(namespace, (store) => store.delete(key)),
  })

  const pool: ChannelPool = {
    free: async (origin, key) => (await openPool()).pool.free(originOf(origin), key),
    claim: async (record, options) =>
      (await openPool()).pool.claim(record, { ...options, origin: originOf(options.origin) }),
    add: async (entry, options) =>
      (await openPool()).pool.add(entry, { ...options, origin: originOf(options.origin) }),
    put: async (entry, { origin }) =>
      (await openPool()).pool.put(entry, {
        origin: origin === undefined ? undefined : originOf(origin),
      }),
  }

  return {
    ...namespaced(''),
    path: file,
    pool,
    list: async () => (await openPool()).pool.list(),
    forOrigin: (origin) => namespaced(originOf(origin)),
    async close() {
      const stores = [...namespaces.values()]
      const current = pooled
      namespaces.clear()
      pooled = undefined
      for (const store of await Promise.allSettled(stores))
        if (store.status === 'fulfilled') store.value.close()
      const opened = await current?.catch(() => undefined)
      try {
        // Leases still held end first, their ledgers written exactly.
        opened?.pool.releaseAll()
      } catch (error) {
        throw storeError(error, { path: file })
      } finally {
        opened?.database.close()
      }
    },
  }
}

/** `$TEMPO_HOME/wallet/channels.db`, beside `keys.toml` (mppx's own default ignores `TEMPO_HOME`). */
export function defaultStorePath() {
  return join(dirname(keysTomlPath()), 'channels.db')
}
