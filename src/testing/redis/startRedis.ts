import { spawn } from 'node:child_process'
import { BaseError } from '../../errors.js'
import { stopper, tiedToParent } from '../process.js'

export type StartRedisOptions = {
  /**
   * The server binary: `redis-server` or `valkey-server` (they speak the same protocol).
   * @default the `REDIS_SERVER` environment variable, else `redis-server` on the PATH, else `valkey-server`
   */
  binary?: string | undefined
  /** Loopback port; `0` picks a free one. @default 0 */
  port?: number | undefined
  /** How long to wait for the server to accept connections, in ms. @default 10_000 */
  startTimeout?: number | undefined
  /**
   * A folder where the server keeps its data (an append-only file, synced at every write), so
   * that a server started again on it (a restart) has everything it had. @default nothing on disk
   */
  dir?: string | undefined
  /** A password clients must give (`requirepass`); `url` then holds it. @default none */
  password?: string | undefined
  /** More `redis-server` arguments, e.g. `['--cluster-enabled', 'yes', …]`. @default none */
  args?: readonly string[] | undefined
}

export type Redis = {
  /** `redis://127.0.0.1:<port>` (`redis://:<password>@…` with one), for `redisChannelStore` or ioredis. */
  url: string
  port: number
  /** The server's operating-system process id (to pause it with SIGSTOP, say). */
  pid: number
  /** Ends the server and waits for it to exit. Idempotent. */
  stop(): Promise<void>
}

export type RedisStartErrorType = RedisStartError & { name: 'RedisStartError' }

/** No Redis (or Valkey) server could be found, or it did not start accepting connections. */
export class RedisStartError extends BaseError {
  constructor(shortMessage: string, { details }: { details?: string | undefined } = {}) {
    super(shortMessage, {
      details,
      metaMessages: [
        'Install one (Debian: `apt-get install redis-server`; or valkey-server), or name a binary',
        'with `binary` or the REDIS_SERVER environment variable.',
      ],
      name: 'RedisStartError',
    })
  }
}

/**
 * Starts a `redis-server` (or `valkey-server`) on loopback, with nothing saved to disk, for tests
 * of a fleet's channel store. No npm package ships a Redis binary: it comes from the system
 * (`apt-get install redis-server`). The server is stopped by `stop()`, and also when this Node
 * process dies in any way.
 *
 * @example
 * ```ts
 * import { startRedis } from 'viem-mpp/testing'
 *
 * const redis = await startRedis()
 * // … redisChannelStore({ redis: redis.url }) …
 * await redis.stop()
 * ```
 */
export async function startRedis({
  binary = process.env.REDIS_SERVER || undefined,
  port = 0,
  startTimeout = 10_000,
  dir,
  password,
  args = [],
}: StartRedisOptions = {}): Promise<Redis> {
  const candidates = binary ? [binary] : ['redis-server', 'valkey-server']
  let lastError: Error | undefined
  for (const candidate of candidates) {
    const started = await startServer(candidate, {
      port,
      timeout: startTimeout,
      dir,
      password,
      args,
    }).catch((error: Error) => {
      lastError = error
      return undefined
    })
    if (started) return started
    // A binary that exists but fails (a port taken) is the answer; only a missing one is skipped.
    if (!(lastError instanceof MissingBinaryError)) throw lastError
  }
  throw new RedisStartError(
    `No Redis server found (${candidates.join(', ')}${binary ? '' : ' on the PATH'}).`,
  )
}

/** The binary is not there to run. */
class MissingBinaryError extends Error {}

async function startServer(
  binary: string,
  {
    port,
    timeout,
    dir,
    password,
    args: more,
  }: {
    port: number
    timeout: number
    dir: string | undefined
    password: string | undefined
    args: readonly string[]
  },
): Promise<Redis> {
  // Port 0 asks the OS for a free port, which redis-server does not: one is picked here.
  const chosen = port === 0 ? await freePort() : port
  const args = [
    '--port',
    String(chosen),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    ...(dir === undefined
      ? ['--appendonly', 'no']
      : ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always']),
    ...(password === undefined ? [] : ['--requirepass', password]),
    '--protected-mode',
    'yes',
    ...more,
  ]
  const child = spawn(
    '/bin/sh',
    ['-c', `command -v "$0" >/dev/null || exit 127; ${tiedToParent}`, binary, ...args],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  )
  const stop = stopper(child)
  let output = ''
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          finish(
            new RedisStartError(`${binary} did not accept connections within ${timeout} ms.`, {
              details: output.trim().split('\n').slice(-5).join('\n'),
            }),
          ),
        timeout,
      )
      const finish = (error?: Error) => {
        clearTimeout(timer)
        child.stdout?.off('data', onData)
        child.off('exit', onExit)
        child.stdout?.resume()
        child.stderr?.resume()
        if (error) reject(error)
        else resolve()
      }
      const onData = (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-8_192)
        if (/Ready to accept connections/.test(output)) finish()
      }
      const onExit = (code: number | null) =>
        finish(
          code === 127
            ? new MissingBinaryError(binary)
            : new RedisStartError(`${binary} exited (code ${code}) before accepting connections.`, {
                details: output.trim().split('\n').slice(-5).join('\n'),
              }),
        )
      child.stdout?.on('data', onData)
      child.stderr?.on('data', onData)
      child.once('exit', onExit)
    })
  } catch (error) {
    await stop()
    throw error
  }
  const auth = password === undefined ? '' : `:${encodeURIComponent(password)}@`
  // The server's own pid, from its start-up line (the shell that runs it has another).
  const pid = Number(/\bpid=(\d+)/.exec(output)?.[1] ?? child.pid)
  return { url: `redis://${auth}127.0.0.1:${chosen}`, port: chosen, pid, stop }
}

/** A loopback port free at this moment. */
async function freePort(): Promise<number> {
  const { createServer } = await import('node:net')
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}
