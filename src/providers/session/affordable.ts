import type { Account, Hex } from 'viem'
import { raceSignal } from '../../internal/signal.js'
import type { SessionRequest } from '../../reserve/sessionRequest.js'
import { prepareChannelTransaction, stillValid } from '../../reserve/transactions.js'
import { accessKeyOf, type KeychainEntry, payerOf, prepareInTurn } from '../accessKey.js'
import { assertAffordable } from '../funds.js'
import type { SessionContext } from './channel.js'

/**
 * Prepares an open or a top-up (a call of the reserve with `data`) in the access key's turn,
 * then checks, before anything is signed, that the payer can afford it: what it `spends`, the
 * price and its most fee, within the key's limits and call scopes. On failure the turn is ended.
 * The returned `ready()` gives the transaction to sign, prepared again if a slow approval left it
 * too little validity.
 *
 * @example
 * ```ts
 * const prepared = await prepareAffordable(context, { request, spends: deposit, data, signal })
 * const transaction = await prepared.ready() // in authorize()
 * ```
 */
export async function prepareAffordable(
  context: SessionContext,
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
  const { account, client } = context
  const calls = [{ to: request.escrow, data }]
  const prepare = (payer: Account) =>
    prepareChannelTransaction(client, { account: payer, request, data, validAfter })
  const affordable = (fee: bigint, feeToken: Hex | undefined, keychain?: KeychainEntry) =>
    assertAffordable(client, {
      account,
      token: request.currency,
      spends,
      spent: 'the deposit',
      amount: request.amount,
      fee,
      feeToken,
      calls,
      keychain,
    })
  const begun = await accessKeyOf(account, context.chainId)?.begin(client, signal)
  let turn = begun?.turn
  try {
    const ready = await raceSignal(prepareInTurn(account, begun, prepare), signal).catch(
      async (error: unknown) => {
        // A deposit the balance cannot cover fails the estimate first, with an error that does
        // not say so: it is refused, typed, instead.
        await affordable(0n, undefined, begun?.keychain)
        throw error
      },
    )
    turn = ready.turn
    await affordable(ready.prepared.fee, ready.prepared.feeToken, ready.keychain)
    let { prepared } = ready
    return {
      fee: prepared.fee,
      feeToken: prepared.feeToken,
      turn: ready.turn,
      /** The transaction to sign now (prepared again if too little of its validity is left). */
      async ready() {
        prepared = await stillValid(prepared, () =>
          prepare(payerOf(account, ready.turn?.keyAuthorization)),
        )
        return prepared
      },
    }
  } catch (error) {
    turn?.end()
    throw error
  }
}
