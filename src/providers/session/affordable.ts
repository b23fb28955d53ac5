import type { Hex } from 'viem'
import type { SessionRequest } from '../../reserve/sessionRequest.js'
import { prepareChannelTransaction } from '../../reserve/transactions.js'
import { prepareAffordable } from '../affordable.js'
import type { SessionContext } from './channel.js'

/**
 * Prepares an open or a top-up (a call of the reserve with `data`) that the payer can afford:
 * what it `spends` of the channel's token, and its most fee (see `prepareAffordable`).
 *
 * @example
 * ```ts
 * const prepared = await prepareChannelAffordable(context, { request, spends: deposit, data, signal })
 * const { transaction } = await prepared.ready() // in authorize()
 * ```
 */
export function prepareChannelAffordable(
  { client, payer }: SessionContext,
  {
    request,
    spends,
    data,
    validAfter,
    signal,
  }: {
    request: SessionRequest
    spends: bigint
    data: Hex
    validAfter?: number | undefined
    signal: AbortSignal
  },
) {
  return prepareAffordable(client, payer, {
    prepare: (account) => prepareChannelTransaction(client, { account, request, data, validAfter }),
    spend: {
      token: request.currency,
      spends,
      spent: 'the deposit',
      amount: request.amount,
      calls: [{ to: request.escrow, data }],
    },
    signal,
  })
}
