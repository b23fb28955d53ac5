import { accessSync, constants, existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { ChannelStoreError } from '../../stores/errors.js'

/** A value SQLite binds or returns (no blobs are used). */
export type SqlValue = string | number | bigint | null

/** A prepared statement of `node:sqlite` (typed here: this project's Node types predate it). */
export type Statement = {
  run(...values: SqlValue[]): { changes: number | bigint }
  get(...values: SqlValue[]): unknown
  all(...values: SqlValue[]): unknown[]
}

/** A `node:sqlite` `DatabaseSync`, as far as the store uses it. */
export type Database = {
  exec(sql: string): void
  prepare(sql: string): Statement
  close(): void
}

type Sqlite = {
  DatabaseSync: new (path: string) => Database
  createSqliteChannelStore: typeof import('mppx/client/node').createSqliteChannelStore
}

let loaded: Promise<Sqlite> | undefined

/**
 * `node:sqlite` and mppx's SQLite store, loaded on first use, so that importing the store works on
 * Node 20 and only using it fails there: with a {@link ChannelStoreError} (`unsupportedRuntime`).
 *
 * @example
 * ```ts
 * const { DatabaseSync, createSqliteChannelStore } = await loadSqlite()
 * ```
 */
export function loadSqlite(): Promise<Sqlite> {
  loaded ??= (async () => {
    // mppx's store imports `node:sqlite` at its top: it is what fails on Node 20.
    const { createSqliteChannelStore } = await import('mppx/client/node')
    const { DatabaseSync } = (await import(sqliteModule)) as Pick<Sqlite, 'DatabaseSync'>
    return { DatabaseSync, createSqliteChannelStore }
  })().catch((error: unknown) => {
    loaded = undefined
    if ((error as NodeJS.ErrnoException).code === 'ERR_UNKNOWN_BUILTIN_MODULE')
      throw new ChannelStoreError({ reason: 'unsupportedRuntime', cause: error })
    throw error
  })
  return loaded
}

/** In a variable, so that TypeScript does not look for types this project's Node lacks. */
const sqliteModule = 'node:sqlite'

/** How long a handle waits for another process's lock (ms): mppx's own `busy_timeout`. */
export const busyTimeout = 5_000

/**
 * mppx's store of `namespace` in `path`, opened so that processes opening the file at the same
 * moment wait for each other. mppx switches the file to WAL before it sets its busy timeout, and
 * that fails at once ("database is locked") while another process holds the lock, as it does
 * when several create the file together. So the file is switched here first, by a handle that
 * waits, and a busy open of mppx's is tried again for as long as a handle would wait.
 *
 * @example
 * ```ts
 * const store = await openMppxStore(await loadSqlite(), path, 'https://rpc.example')
 * ```
 */
export async function openMppxStore(
  { DatabaseSync, createSqliteChannelStore }: Sqlite,
  path: string,
  namespace: string,
): Promise<ReturnType<Sqlite['createSqliteChannelStore']>> {
  mkdirSync(dirname(path), { recursive: true })
  const database = new DatabaseSync(path)
  try {
    database.exec(`PRAGMA busy_timeout = ${busyTimeout}`)
    database.exec('PRAGMA journal_mode = WAL')
  } finally {
    database.close()
  }
  const deadline = Date.now() + busyTimeout
  for (;;)
    try {
      // No `requestUrl`: mppx writes it to the file verbatim; it defaults to the namespace.
      return createSqliteChannelStore({ path, namespace })
    } catch (error) {
      if (!busy(error) || Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40))
    }
}

/** Whether SQLite said another connection holds the lock (SQLITE_BUSY, or an extended code of it). */
function busy(error: unknown) {
  const { errcode } = error as { errcode?: number }
  return errcode !== undefined && (errcode & 0xff) === code.busy
}

/**
 * Runs `fn` in a write transaction (`BEGIN IMMEDIATE`: the write lock is taken first, so that what
 * `fn` reads stays true until it commits), rolled back if it throws.
 *
 * @example
 * ```ts
 * const taken = transaction(database, () => readThenWrite())
 * ```
 */
export function transaction<value>(database: Database, fn: () => value): value {
  database.exec('BEGIN IMMEDIATE')
  try {
    const value = fn()
    database.exec('COMMIT')
    return value
  } catch (error) {
    try {
      database.exec('ROLLBACK')
    } catch {
      // SQLite rolled back already (it does on some errors): the transaction is gone either way.
    }
    throw error
  }
}

/** SQLite's primary result codes the store tells apart. */
const code = { busy: 5, readOnly: 8, corrupt: 11, cantOpen: 14, notADatabase: 26 } as const

/** File-system error codes of a file or folder that cannot be written. */
const readOnlyErrnos = new Set(['EACCES', 'EPERM', 'EROFS'])

/**
 * `error` (from SQLite, the file system or a row that does not parse) as a
 * {@link ChannelStoreError} naming the file, and the channel when one is at fault.
 *
 * @example
 * ```ts
 * try { write() } catch (error) { throw storeError(error, { path, channelId }) }
 * ```
 */
export function storeError(
  error: unknown,
  { path, channelId }: { path: string; channelId?: string | undefined },
): ChannelStoreError {
  if (error instanceof ChannelStoreError) return error
  const { errcode, code: errno } = error as { errcode?: number; code?: string }
  // Extended result codes (e.g. 1544, SQLITE_READONLY_DIRECTORY) carry the primary one in the low byte.
  const primary = errcode === undefined ? undefined : errcode & 0xff
  const reason =
    primary === code.corrupt || primary === code.notADatabase || error instanceof SyntaxError
      ? 'corrupt'
      : primary === code.readOnly ||
          (errno !== undefined && readOnlyErrnos.has(errno)) ||
          (primary === code.cantOpen && !writable(path))
        ? 'readOnly'
        : 'unavailable'
  return new ChannelStoreError({ reason, path, channelId, cause: error })
}

/**
 * Whether `path` could be written: the file, or the folder a new one would be made in. SQLite
 * says only that it cannot open the file, also when the path is a folder or the folder is missing.
 */
function writable(path: string) {
  const target = existsSync(path) ? path : dirname(path)
  try {
    accessSync(target, constants.W_OK)
    return true
  } catch {
    return !existsSync(target)
  }
}
