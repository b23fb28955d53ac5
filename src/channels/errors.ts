import type { Hex } from 'viem'
import { BaseError } from '../errors.js'
import { redactError } from '../internal/redactUrl.js'

export type ChannelErrorType = ChannelError & { name: 'ChannelError' }

/**
 * A channel-management call (`listChannels`, `closeChannel`, `withdrawChannel`, `syncChannels`)
 * could not do what it was asked. The store is left as it was: an entry is removed only once the
 * chain shows its channel closed. Its `shortMessage` is one line; the cause (URLs cut to their
 * origin) is in `cause`.
 *
 * @example
 * ```ts
 * import { ChannelError, withdrawChannel } from 'viem-mpp'
 *
 * try {
 *   await withdrawChannel({ store, channelId, account, client })
 * } catch (error) {
 *   if (error instanceof ChannelError && error.reason === 'notWithdrawable') console.log(error.shortMessage)
 * }
 * ```
 */
export class ChannelError extends BaseError {
  /** What went wrong. */
  readonly reason: ChannelError.Reason
  /** The channel, when the call was about one. */
  readonly channelId: Hex | undefined

  constructor({
    reason,
    message,
    channelId,
    details,
    cause,
  }: {
    reason: ChannelError.Reason
    /** One line. */
    message: string
    channelId?: Hex | undefined
    details?: string[] | undefined
    cause?: unknown
  }) {
    super(message, {
      ...(cause === undefined ? {} : { cause: redactError(cause) }),
      metaMessages: details,
      name: 'ChannelError',
    })
    this.reason = reason
    this.channelId = channelId
  }
}

export declare namespace ChannelError {
  /**
   * - `unknownChannel`: no such channel in the store (or, for `withdrawChannel` without one, on chain);
   * - `notPayer`: the channel is another payer's, or its vouchers are signed by another key;
   * - `closed`: the channel is closed on chain already;
   * - `notWithdrawable`: its deposit cannot be taken back (yet): see the message;
   * - `serverRefused`: the server did not close it (answer, missing challenge, a voucher above what was signed);
   * - `serverLied`: the server answered that it closed the channel, and the chain does not show it;
   * - `otherOrigin`: `closeChannel`'s URL is on another origin than the one the channel was bought from;
   * - `unreachable`: the server could not be reached;
   * - `rpcUnreachable`: the chain's RPC could not be reached or failed;
   * - `unsupportedStore`: the store cannot list its entries (no `list()`);
   * - `notClosed`: a session provider's `close()` could not close some of its channels (the
   *   first one's failure is the cause): they stay open on chain, and in the store.
   */
  type Reason =
    | 'unknownChannel'
    | 'notPayer'
    | 'closed'
    | 'notWithdrawable'
    | 'serverRefused'
    | 'serverLied'
    | 'otherOrigin'
    | 'unreachable'
    | 'rpcUnreachable'
    | 'unsupportedStore'
    | 'notClosed'
}
