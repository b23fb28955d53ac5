import type { Hex } from 'viem'
import { BaseError } from './base.js'

export type RecoveredChannelErrorType = RecoveredChannelError & { name: 'RecoveredChannelError' }

/**
 * A stored channel whose position at the server was not known (recovered by `syncChannels`,
 * left by a process that died, or written by another tool), taken up for a server that sends no
 * session snapshot, could not pay the call it was approved for: the search for the server's
 * highest voucher gave up (`tooFarBehind`: 100 stale answers; `channelGone`: the server does not
 * know it; `spent`: spent to its deposit; `refused`: the server refused a search voucher for
 * another reason), or, caught up, the channel has no room for the call's voucher (`full`). Only
 * search vouchers were signed, none above what an honest server already held (one calling every
 * one stale holds 100 prices' worth at most). Found as the cause of a `PaymentFailedError`
 * (`settled: false`). The provider does not take that channel up again: the next call takes
 * another one, or opens one, approved by the spending policy with its deposit.
 *
 * @example
 * ```ts
 * import { RecoveredChannelError } from 'viem-mpp'
 *
 * const gaveUp = error.walk((cause) => cause instanceof RecoveredChannelError)
 * ```
 */
export class RecoveredChannelError extends BaseError {
  /** Why the recovered channel did not pay. */
  readonly reason: RecoveredChannelError.Reason
  readonly channelId: Hex

  constructor({ reason, channelId }: { reason: RecoveredChannelError.Reason; channelId: Hex }) {
    super(recoveredChannelMessages[reason], {
      metaMessages: [`Channel: ${channelId}`],
      name: 'RecoveredChannelError',
    })
    this.reason = reason
    this.channelId = channelId
  }
}

export declare namespace RecoveredChannelError {
  type Reason = 'tooFarBehind' | 'channelGone' | 'spent' | 'refused' | 'full' | 'unproven'
}

const recoveredChannelMessages: Record<RecoveredChannelError.Reason, string> = {
  tooFarBehind:
    'The server called 100 catch-up vouchers on the stored channel stale: it is left to others, and the next call takes another channel.',
  channelGone:
    'The server does not know the stored channel: it is left to others, and the next call takes another channel.',
  spent:
    'The stored channel is spent to its deposit: it is left to others, and the next call takes another channel.',
  refused:
    'The server refused a catch-up voucher on the stored channel: it is left to others, and the next call takes another channel.',
  full: 'The stored channel, caught up with the server, has no room for the call: the next call takes another channel.',
  unproven:
    'The server says it holds a voucher above every one signed on the channel, and proves none (no signed session snapshot): nothing more is signed on it; it is kept for close() or withdrawChannel(), and the next call takes another channel.',
}
