import type { SessionRequest } from '../../reserve/sessionRequest.js'
import type { PaymentQuote } from '../PaymentProvider.js'
import type { SessionContext } from './channel.js'

/**
 * The quote of a session payment: `amount` is what the call's voucher adds (its price), `deposit`
 * what an open or a top-up locks, `fee` the most its transaction costs.
 *
 * @example
 * ```ts
 * const quote = quoteOf(context, request, { amount: request.amount, deposit: 0n, fee: 0n })
 * ```
 */
export function quoteOf(
  context: Pick<SessionContext, 'chainId'>,
  request: SessionRequest,
  cost: Pick<PaymentQuote, 'amount' | 'deposit' | 'fee' | 'feeToken'>,
): PaymentQuote {
  return {
    method: 'tempo',
    intent: 'session',
    ...cost,
    currency: request.currency,
    recipient: request.recipient,
    transfers: [{ recipient: request.recipient, amount: cost.amount }],
    chainId: context.chainId,
  }
}
