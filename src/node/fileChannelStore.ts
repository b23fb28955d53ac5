import { createHash } from 'node:crypto'
import { dirname, join, resolve } from 'node:path'
import type { ChannelStore as MppxChannelStore } from 'mppx/client'
import type { SqliteChannelStore } from 'mppx/client/node'
import type { ChannelRecord, ChannelStore } from '../stores/ChannelStore.js'
import { ChannelStoreError } from '../stores/errors.js'
import { originOf } from '../stores/origin.js'
import { keysTomlPath } from './keys.js'
import { withLockFile } from './lease.js'

/** A {@link fileChannelStore}: a {@link ChannelStore} with its origins, its lease and its file. */
export type FileChannelStore = ChannelStore &
  Required<Pick<ChannelStore, 'forOrigin' | 'lease' | 'list'>> & {
    /** The SQLite database file. */
    readonly path: string
    /** Closes the database handles (the store opens them again when used). */
    close(): Promise<void>
  }

/**
 * A {@link ChannelStore} in a SQLite file, by default Tempo's shared channel database
 * `$TEMPO_HOME/wallet/channels.db` (`TEMPO_HOME` defaults to `~/.tempo`): the `channels` table that
 * mppx's `createSqliteChannelStore`, mpp-rs and Foundry use, so that a channel opened by any of
 * them is reused here, and the other way round. It is mppx's store, one per origin (its
 * `namespace`); only the origin is written, never a URL's path, query or userinfo.
 *
 * Several processes may share it: each write is a SQLite transaction (WAL), so a crash mid-write
 * loses nothing, and {@link ChannelStore.lease} takes a lock file beside the database.
 *
 * It needs `node:sqlite` (Node >= 22.13, or 22.5 with `--experimental-sqlite`), loaded on first
 * use: on an older Node, using the store throws a {@link ChannelStoreError} that says so. A
 * database that is not SQLite, or is damaged, throws one too, and is left as it is.
 *
 * @example
 * ```ts
 * import { session } from 'viem-mpp'
 * import { fileChannelStore } from 'viem-mpp/node'
 *
 * const provider = session({ account, client, store: fileChannelStore() })
 * ```
 */
export function fileChannelStore(path: string = defaultPath()): FileChannelStore {
  const file = resolve(path)
  const opened = new Map<string, Promise<SqliteChannelStore>>()

  const open = (namespace: string) => {
    const existing = opened.get(namespace)
    if (existing) return existing
    const store = loadSqlite().then(({ createSqliteChannelStore }) => {
      try {
        // No `requestUrl`: mppx writes it to the file verbatim; it defaults to the namespace.
        return createSqliteChannelStore({ path: file, namespace })
      } catch (error) {
        throw storeError(error, file)
      }
    })
    opened.set(namespace, store)
    // A failed open is not remembered: the file may be repaired while the process runs.
    store.catch(() => opened.get(namespace) === store && opened.delete(namespace))
    return store
  }

  const use = async <value>(
    namespace: string,
    action: (store: SqliteChannelStore) => value,
  ): Promise<Awaited<value>> => {
    const store = await open(namespace)
    try {
      return await action(store)
    } catch (error) {
      throw storeError(error, file)
    }
  }

  const namespaced = (namespace: string): MppxChannelStore => ({
    get: (key) => use(namespace, (store) => store.get(key)),
    set: (entry) => use(namespace, (store) => store.set(entry)),
    delete: (key) => use(namespace, (store) => store.delete(key)),
  })

  /** Every row's namespace and key (`scope_key` is `<namespace>\n<key>`), for `list`. */
  const scopeKeys = async () => {
    await open('')
    const { DatabaseSync } = (await import(sqliteModule)) as SqliteModule
    try {
      const database = new DatabaseSync(file, { readOnly: true })
      try {
        const rows = database
          .prepare('SELECT scope_key FROM channels WHERE scope_key IS NOT NULL ORDER BY rowid')
          .all() as { scope_key: string }[]
        return rows.map(({ scope_key }) => {
          const at = scope_key.lastIndexOf('\n')
          return { namespace: scope_key.slice(0, at), key: scope_key.slice(at + 1) }
        })
      } finally {
        database.close()
      }
    } catch (error) {
      throw storeError(error, file)
    }
  }

  return {
    ...namespaced(''),
    path: file,
    async list() {
      const records: ChannelRecord[] = []
      for (const { namespace, key } of await scopeKeys()) {
        // Read through mppx's store, which parses its own rows.
        const entry = await namespaced(namespace).get(key)
        if (entry) records.push({ origin: namespace || undefined, key, entry })
      }
      return records
    },
    forOrigin: (origin) => namespaced(originOf(origin)),
    lease: (scope, fn, { signal } = {}) => withLockFile(leasePath(file, scope), fn, { signal }),
    async close() {
      const stores = [...opened.values()]
      opened.clear()
      for (const store of await Promise.allSettled(stores))
        if (store.status === 'fulfilled') store.value.close()
    },
  }
}

/** `$TEMPO_HOME/wallet/channels.db`, beside `keys.toml` (mppx's own default ignores `TEMPO_HOME`). */
function defaultPath() {
  return join(dirname(keysTomlPath()), 'channels.db')
}

/** The lock file of `scope`: beside the database, named by a hash (a scope may be any string). */
function leasePath(file: string, scope: string) {
  return `${file}.${createHash('sha256').update(scope).digest('hex').slice(0, 32)}.lock`
}

/** `node:sqlite` (typed here: this project's Node types predate it), loaded after mppx's store. */
const sqliteModule = 'node:sqlite'
type SqliteModule = {
  DatabaseSync: new (
    path: string,
    options: { readOnly: boolean },
  ) => { prepare(sql: string): { all(): unknown[] }; close(): void }
}

let sqlite: Promise<typeof import('mppx/client/node')> | undefined

/** mppx's SQLite store, which imports `node:sqlite` at its top, so that Node 20 fails here only. */
function loadSqlite() {
  sqlite ??= import('mppx/client/node').catch((error: unknown) => {
    sqlite = undefined
    if ((error as NodeJS.ErrnoException).code === 'ERR_UNKNOWN_BUILTIN_MODULE')
      throw new ChannelStoreError({ reason: 'unsupportedRuntime', cause: error })
    throw error
  })
  return sqlite
}

/** SQLite's result codes for a file that is not a database (26) or is damaged (11). */
const corruptCodes = new Set([11, 26])

function storeError(error: unknown, path: string) {
  if (error instanceof ChannelStoreError) return error
  const { errcode } = error as { errcode?: number }
  // A bad entry row fails to parse as JSON in mppx's `get`.
  const corrupt =
    (errcode !== undefined && corruptCodes.has(errcode & 0xff)) || error instanceof SyntaxError
  return new ChannelStoreError({ reason: corrupt ? 'corrupt' : 'unavailable', path, cause: error })
}
