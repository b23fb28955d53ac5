import { ChannelStoreError } from '../../stores/errors.js'

/** The Redis keys of one store (one `prefix`). */
export type Keys = {
  /** The hash of channel `id` (lower case). */
  channel(id: string): string
  /** What every channel hash's name starts with (the `read` script appends ids). */
  readonly channelPrefix: string
  /** The sorted set of the channels of a scope: an origin (`undefined`: none) and mppx's key. */
  scope(origin: string | undefined, key: string): string
  /** The sorted set of every channel of the store, for `list`. */
  readonly all: string
  /** The store-wide counter: the order of channels, and every fencing token (never repeated). */
  readonly order: string
  /** The total the fleet has committed: marks written ahead, less what released leases gave back. */
  readonly committed: string
}

/**
 * The keys of the store named `prefix`: all in the hash tag `{<prefix>}`, so that every script
 * runs on one node of a Redis Cluster, and atomically across scopes (a claim moving a channel
 * between origins, the fleet budget beside the mark). The store's load (a write per several paid
 * calls) is far below one node's. `prefix` is percent-encoded where it holds anything but
 * letters, digits and `.-_`, so that it can never close the hash tag or reach into another
 * store's keys; an empty one is refused (an empty hash tag would spread the keys over the
 * cluster).
 *
 * @example
 * ```ts
 * keysOf('payments:prod').channel('0xc1…') // '{payments%3Aprod}:channel:0xc1…'
 * ```
 */
export function keysOf(prefix: string): Keys {
  if (typeof prefix !== 'string' || prefix.length === 0)
    throw new ChannelStoreError({
      reason: 'invalidOptions',
      cause: new Error('redisChannelStore: `prefix` must be a non-empty string.'),
    })
  const tag = `{${escapeKeyPart(prefix)}}`
  const channelPrefix = `${tag}:channel:`
  return {
    channel: (id) => `${channelPrefix}${id}`,
    channelPrefix,
    // An origin holds no space: `<origin> <key>` is unambiguous.
    scope: (origin, key) => `${tag}:scope:${origin ?? ''} ${key}`,
    all: `${tag}:channels`,
    order: `${tag}:order`,
    committed: `${tag}:committed`,
  }
}

/** `text` with each byte other than a letter, a digit or `.-_` as `%XX`: one-to-one, brace-free. */
function escapeKeyPart(text: string) {
  let escaped = ''
  for (const byte of new TextEncoder().encode(text))
    escaped += /[A-Za-z0-9._-]/.test(String.fromCharCode(byte))
      ? String.fromCharCode(byte)
      : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  return escaped
}
