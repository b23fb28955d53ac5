/**
 * The store a `viem-mpp channels` command works on (`--store`: a file or a `redis://` URL), and
 * the channel arguments read against it: the id, the endpoint to close at, what the store says.
 */
import { existsSync } from 'node:fs'
import { type Hex, isHex } from 'viem'
import { ChannelError, type ChannelSummary, listChannels } from '../channels/index.js'
import { sameId } from '../channels/shared.js'
import { redactUrl } from '../internal/redactUrl.js'
import { type FileChannelStore, fileChannelStore } from '../node/fileChannelStore.js'
import { type RedisChannelStore, redisChannelStore } from '../node/redisChannelStore.js'
import { CliError, CliUsageError } from './errors.js'

/** Runs `fn`, then closes the store's database handles, whatever `fn` did. */
export async function using(store: CliStore, fn: () => Promise<number>) {
  try {
    return await fn()
  } finally {
    await store.close()
  }
}

/** The store a command works on, where it is (for messages), and whether it exists yet. */
export type CliStore = (FileChannelStore | RedisChannelStore) & {
  readonly where: string
  /** Whether there is a store to read (a file store is not created by looking at it). */
  exists(): boolean
}

/** `--store`: a file (the default one without it), or a `redis://` URL with `--prefix`. */
export function openStore(
  { store: value, prefix }: { store?: string | undefined; prefix?: string | undefined },
  command: string,
): CliStore {
  if (value !== undefined && /^rediss?:\/\//i.test(value)) {
    const store = redisChannelStore({ redis: value, prefix })
    return Object.assign(store, { where: store.location, exists: () => true })
  }
  if (prefix !== undefined)
    throw new CliUsageError('--prefix names the channels of a redis:// store (--store)', {
      command,
    })
  const store = value === undefined ? fileChannelStore() : fileChannelStore(value)
  return Object.assign(store, { where: store.path, exists: () => existsSync(store.path) })
}

/** `<channelId>`: 0x and 64 hex digits, else a usage error naming the command. */
export function channelIdOf(value: string | undefined, command: string): Hex {
  if (value === undefined) throw new CliUsageError('missing <channelId>', { command })
  if (!isHex(value, { strict: true }) || value.length !== 66)
    throw new CliUsageError(`<channelId> must be 0x and 64 hex digits, not '${value}'`, {
      command,
    })
  return value
}

/**
 * The URL to close `channelId` at: `--url` (on the channel's origin, when the store knows it),
 * else the origin's root. Never a URL from disk with a path or query: the store keeps origins.
 */
export function endpointOf(summary: ChannelSummary, url: string | undefined, channelId: Hex) {
  const command = 'channels close'
  const { origin } = summary
  if (url !== undefined) {
    if (origin !== undefined && new URL(url).origin !== origin)
      throw new CliUsageError(
        `--url is on ${redactUrl(url)}, but channel ${channelId} was bought from ${origin}`,
        { command },
      )
    return url
  }
  if (origin === undefined)
    throw new CliUsageError(
      `the store does not say which endpoint sold channel ${channelId}: pass --url with the endpoint's URL`,
      { command },
    )
  return `${origin}/`
}

/**
 * A close tried at the origin's root, since no `--url` was given, that the server did not take:
 * the endpoint may be at a path, which the store does not keep.
 */
export function atOriginError(error: unknown, channelId: Hex) {
  if (!(error instanceof ChannelError) || !['serverRefused', 'unreachable'].includes(error.reason))
    return error
  const withdraw =
    error.reason === 'unreachable'
      ? `; without the server, \`viem-mpp channels withdraw ${channelId}\` gets the deposit back`
      : ''
  return new CliError(
    `${error.shortMessage.replace(/\.$/, '')} (tried at the origin, all the store keeps: pass --url with the endpoint's URL if the channel was bought at a path${withdraw}).`,
    { cause: error },
  )
}

/** What the store says of `channelId`, if it has it. A store that does not exist is not created. */
export async function summaryOf(store: CliStore, channelId: Hex) {
  if (!store.exists()) return undefined
  const summaries = await listChannels({ store })
  return summaries.find((channel) => sameId(channel.channelId, channelId))
}
