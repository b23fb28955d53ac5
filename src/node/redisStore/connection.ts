import { createHash } from 'node:crypto'
import { redactError } from '../../internal/redactUrl.js'
import { ChannelStoreError } from '../../stores/errors.js'
import { type ScriptName, scripts } from './scripts.js'

/**
 * What the store needs of a Redis client: running Lua scripts. An ioredis `Redis` or `Cluster`
 * has it; so does any client that speaks the same commands.
 */
export type RedisClient = {
  evalsha(sha: string, numberOfKeys: number, ...args: string[]): Promise<unknown>
  eval(script: string, numberOfKeys: number, ...args: string[]): Promise<unknown>
  /** ioredis's connection state (`ready` once connected): a command waits for it. */
  readonly status?: string
  once?(event: 'ready', listener: () => void): unknown
}

/** The ioredis client the store makes from a URL, and what it uses of it. */
type OwnedClient = RedisClient & {
  connect(): Promise<void>
  quit(): Promise<unknown>
  disconnect(): void
  on(event: 'error' | 'ready', listener: (error?: unknown) => void): unknown
  stream?: { ref?(): void; unref?(): void } | undefined
}

/** Runs the store's scripts on one Redis, each within `timeout` ms. */
export type Connection = {
  /** Where the store is, safe to show: `redis://host:port/db`, never a password. */
  readonly location: string
  run(name: ScriptName, keys: readonly string[], args: readonly string[]): Promise<unknown[]>
  /** Closes the client if the store made it (a client passed in is its owner's to close). */
  close(): Promise<void>
}

const sha = Object.fromEntries(
  Object.entries(scripts).map(([name, lua]) => [
    name,
    createHash('sha1').update(lua).digest('hex'),
  ]),
) as Record<ScriptName, string>

/**
 * A connection to `redis`: a client (used as it is), or a `redis://` / `rediss://` URL, for which
 * ioredis is loaded (an optional peer dependency) and a client made on first use. Every script
 * runs by its SHA1, sent in full once if the server lacks it. A reply that is not the store's
 * (Redis unreachable, slow past `timeout`, refusing) throws a {@link ChannelStoreError}
 * (`unavailable`); a record the scripts refuse to read, `corrupt`.
 *
 * The client made from a URL keeps the process alive only while a script runs, so that a
 * script's process ends when its work does (see `redisChannelStore`'s exit handling).
 *
 * @example
 * ```ts
 * const connection = connect('redis://127.0.0.1:6379', 5_000)
 * const [status] = await connection.run('renew', [channelKey], [fence, '15000'])
 * ```
 */
export function connect(redis: RedisClient | string, timeout: number): Connection {
  const location = typeof redis === 'string' ? redisLocation(redis) : 'a Redis client'
  let client: Promise<RedisClient> | undefined
  let owned: OwnedClient | undefined
  let running = 0
  let reconnected: Promise<void> | undefined
  /** Resolves when the client is connected again: one wait shared by every command meanwhile. */
  const ready = (client: RedisClient) => {
    reconnected ??= new Promise<void>((resolve) =>
      client.once?.('ready', () => {
        reconnected = undefined
        resolve()
      }),
    )
    return reconnected
  }

  const clientOf = () => {
    if (typeof redis !== 'string') return Promise.resolve(redis)
    client ??= makeClient(redis, timeout).then((made) => {
      owned = made
      // A reconnect makes a new socket: it too keeps the process alive only while a script runs.
      made.on('ready', () => {
        if (running === 0) made.stream?.unref?.()
      })
      return made
    })
    const current = client
    // A client that could not be made (ioredis missing, a bad URL) is made again next time.
    current.catch(() => {
      if (client === current) client = undefined
    })
    return current
  }
  const hold = (on: boolean) => {
    running += on ? 1 : -1
    if (on && running === 1) owned?.stream?.ref?.()
    if (!on && running === 0) owned?.stream?.unref?.()
  }
  const unavailable = (cause: unknown) =>
    cause instanceof ChannelStoreError
      ? cause
      : new ChannelStoreError({ reason: 'unavailable', path: location, cause: redactError(cause) })

  const send = async (
    name: ScriptName,
    keys: readonly string[],
    args: readonly string[],
    late: AbortSignal,
  ) => {
    const redisClient = await clientOf()
    // Reconnecting after a drop: the command waits for the connection (within the timeout)
    // rather than failing at once, so that a moment's break is ridden through; past the timeout
    // it is never sent (a mark or a claim must not land after the payment gave up on it).
    // A client of the caller's is waited for the same way, when it says its state (ioredis).
    if (redisClient.status !== undefined && redisClient.status !== 'ready') await ready(redisClient)
    late.throwIfAborted()
    try {
      return await redisClient.evalsha(sha[name], keys.length, ...keys, ...args)
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
      late.throwIfAborted()
      return redisClient.eval(scripts[name], keys.length, ...keys, ...args)
    }
  }

  return {
    location,
    async run(name, keys, args) {
      hold(true)
      let timer: ReturnType<typeof setTimeout> | undefined
      const late = new AbortController()
      try {
        const timedOut = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const error = new Error(`Redis did not answer within ${timeout} ms.`)
            late.abort(error)
            reject(error)
          }, timeout)
        })
        const reply = await Promise.race([send(name, keys, args, late.signal), timedOut])
        if (!Array.isArray(reply)) throw new Error(`Unexpected reply to ${name}.`)
        return reply
      } catch (error) {
        if (String((error as Error)?.message).includes('VIEM_MPP_CORRUPT') || isWrongType(error))
          throw new ChannelStoreError({ reason: 'corrupt', path: location, cause: error })
        throw unavailable(error)
      } finally {
        clearTimeout(timer)
        hold(false)
      }
    },
    async close() {
      const made = owned
      client = undefined
      owned = undefined
      if (!made) return
      await made.quit().catch(() => made.disconnect())
    },
  }
}

function isWrongType(error: unknown) {
  return String((error as Error)?.message).startsWith('WRONGTYPE')
}

/** An ioredis client for `url`, connected; commands fail at once while it is disconnected. */
async function makeClient(url: string, timeout: number): Promise<OwnedClient> {
  const parsed = parseRedisUrl(url)
  let ioredis: { default: new (url: string, options: object) => OwnedClient }
  try {
    ioredis = (await import('ioredis')) as unknown as typeof ioredis
  } catch (error) {
    throw new ChannelStoreError({
      reason: 'unavailable',
      path: redisLocation(url),
      cause: new Error(
        `redisChannelStore needs the ioredis package for a redis:// URL: npm install ioredis (${(error as Error).message})`,
      ),
    })
  }
  const client = new ioredis.default(parsed.href, {
    lazyConnect: true,
    // Unavailable at once while disconnected, rather than queued to run late: a claim or a mark
    // sent while Redis is away must not land after the payment gave up on it.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: timeout,
    commandTimeout: timeout,
    // Tried again often enough that a command waiting its `timeout` for the connection sees a try.
    retryStrategy: (attempt: number) => Math.min(attempt * 100, 1_000, timeout / 2),
  })
  // Reported through the commands that fail; ioredis would otherwise print each reconnect error.
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    client.disconnect()
    throw error
  }
  return client
}

/**
 * `url` parsed as a Redis URL: `redis://` or `rediss://` (TLS), else a {@link ChannelStoreError}
 * that shows the URL without its password.
 */
function parseRedisUrl(url: string) {
  let parsed: URL | undefined
  try {
    parsed = new URL(url)
  } catch {}
  if (!parsed || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:'))
    throw new ChannelStoreError({
      reason: 'unavailable',
      path: redisLocation(url),
      cause: new Error('A Redis store is a redis:// or rediss:// URL, or an ioredis client.'),
    })
  return parsed
}

/**
 * Where a Redis URL points, safe to show: scheme, host, port and database, never the username,
 * password or query (`rediss://127.0.0.1:6380/2`).
 *
 * @example
 * ```ts
 * redisLocation('redis://:hunter2@cache.internal:6379/1') // 'redis://cache.internal:6379/1'
 * ```
 */
function redisLocation(url: string): string {
  try {
    const { protocol, hostname, port, pathname } = new URL(url)
    return `${protocol}//${hostname}${port ? `:${port}` : ''}${pathname === '/' ? '' : pathname}`
  } catch {
    return '<invalid Redis URL>'
  }
}
