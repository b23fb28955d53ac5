import { BaseError } from '../errors.js'
import { redactErrorInPlace } from '../internal/redactUrl.js'

export type ChannelStoreErrorType = ChannelStoreError & { name: 'ChannelStoreError' }

/**
 * A channel store cannot be used: its database is corrupt or cannot be opened, this runtime lacks
 * what it needs (`node:sqlite`, Web Storage), ... Nothing in the store was changed: a corrupt
 * database is reported, never emptied, because it may hold the only record of open channels and
 * their deposits.
 *
 * @example
 * ```ts
 * import { ChannelStoreError } from 'viem-mpp'
 *
 * if (error instanceof ChannelStoreError && error.reason === 'corrupt') console.log(error.path)
 * ```
 */
export class ChannelStoreError extends BaseError {
  /** What is wrong. */
  readonly reason: ChannelStoreError.Reason
  /** The store's file, for a file store. */
  readonly path: string | undefined
  /** The channel whose record is at fault, when one is. */
  readonly channelId: string | undefined
  /** For `budget`: what is left of the store's fleet budget (base units). */
  readonly left: bigint | undefined

  constructor({
    reason,
    path,
    channelId,
    left,
    cause,
  }: {
    reason: ChannelStoreError.Reason
    /** Where the store is: its file, or its Redis (`redis://host:port/db`, never a password). */
    path?: string | undefined
    channelId?: string | undefined
    left?: bigint | undefined
    cause?: unknown
  }) {
    super(shortMessages[reason], {
      cause: cause instanceof Error ? cause : undefined,
      metaMessages: [
        ...(path === undefined ? [] : [`${path.includes('://') ? 'Store' : 'File'}: ${path}`]),
        ...(channelId === undefined ? [] : [`Channel: ${channelId}`]),
        ...(left === undefined ? [] : [`Left of the fleet budget: ${left} (base units)`]),
        ...(reason === 'unavailable' && path?.includes('://') ? [unavailableHint] : []),
        ...(reason === 'corrupt' ? [corruptHint] : []),
        ...(reason === 'unsupportedRuntime' ? [runtimeHint()] : []),
      ],
      name: 'ChannelStoreError',
    })
    this.reason = reason
    this.path = path
    this.channelId = channelId
    this.left = left
    // Its messages name a file or a Redis host, never a secret: kept as it is (reason and all)
    // when it becomes the cause of a payment error.
    redactErrorInPlace(this)
  }
}

export declare namespace ChannelStoreError {
  type Reason =
    | 'corrupt'
    | 'unavailable'
    | 'readOnly'
    | 'leaseLost'
    | 'unsupportedRuntime'
    | 'noStorage'
    | 'budget'
    | 'invalidOptions'
}

const shortMessages: Record<ChannelStoreError.Reason, string> = {
  corrupt: 'The channel database is corrupt; it was left as it is.',
  unavailable: 'The channel database cannot be used.',
  readOnly:
    'The channel database cannot be written (its file or folder is read-only); nothing was signed.',
  leaseLost:
    'Another holder took this channel over (its lease ran out unrenewed); nothing more is signed on it here.',
  unsupportedRuntime:
    'fileChannelStore needs node:sqlite: Node >= 22.13, or Node 22.5 to 22.12 with --experimental-sqlite.',
  noStorage:
    'localStorageChannelStore needs a Web Storage: globalThis.localStorage is not available.',
  budget: "The store's fleet budget cannot cover this payment; nothing was signed.",
  invalidOptions: 'The channel store was given an invalid option.',
}

const unavailableHint =
  'Nothing was signed above what the store recorded; payments resume on the same channels once it answers again.'

const corruptHint =
  'It may record open channels and their deposits: move it aside (or restore a backup) rather than deleting it, and recover the channels from the chain with syncChannels().'

const runtimeHint = () =>
  `This is Node ${globalThis.process?.versions?.node ?? '(unknown)'}. Use another store (memoryChannelStore()), or a newer Node.`
