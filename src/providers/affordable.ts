import type { Account, Address } from 'viem'
import { raceSignal } from '../internal/signal.js'
import { minValidityLeft, nowInSeconds } from '../internal/time.js'
import type { ChainClient } from '../reserve/transactions.js'
import type { KeyBegun, KeyTurn } from './accessKey.js'
import { withKeyAuthorization } from './accessKey.js'
import { assertAffordable } from './funds.js'
import type { KeyCall } from './keyScopes.js'
import type { Payer } from './payer.js'

/** A payment transaction, prepared and priced, not signed. */
export type PreparedTransaction = {
  transaction: { validBefore?: number | undefined }
  /** The most its fee can cost, in base units of `feeToken`; zero when the server sponsors it. */
  fee: bigint
  feeToken: Address | undefined
}

/** A payment transaction the payer can afford, ready to be signed once approved. */
export type AffordableTransaction<prepared extends PreparedTransaction> = {
  fee: bigint
  feeToken: Address | undefined
  /** The access key's turn, while the transaction attaches its authorization: the caller ends it. */
  turn: KeyTurn | undefined
  /**
   * The transaction to sign now: prepared again, within the fee quoted, if a slow approval left
   * it too little validity (unless the challenge expires first).
   */
  ready(): Promise<prepared>
}

/**
 * Prepares a payment transaction of `payer` (a charge's transfers, a channel's open or top-up) in
 * its access key's turn, then refuses it, before anything is signed, unless the payer can afford
 * it: what it `spends` of the token and its most fee, within the balances and the key's limits
 * and call scopes. `prepare` gets the account to prepare with (see `withKeyAuthorization`). On
 * failure the key's turn is ended.
 *
 * @example
 * ```ts
 * const affordable = await prepareAffordable(client, payer, { prepare, spend, signal })
 * const { transaction } = await affordable.ready() // once approved
 * ```
 */
export async function prepareAffordable<prepared extends PreparedTransaction>(
  client: ChainClient,
  payer: Payer,
  {
    prepare,
    spend,
    expires = Number.POSITIVE_INFINITY,
    signal,
  }: prepareAffordable.Options<prepared>,
): Promise<AffordableTransaction<prepared>> {
  const affordable = (fee: bigint, feeToken: Address | undefined, begun?: Partial<KeyBegun>) =>
    assertAffordable(client, payer, { ...spend, fee, feeToken, keychain: begun?.keychain })
  const begun = await payer.key?.begin(client, signal)
  let turn = begun?.turn
  try {
    const ready = await raceSignal(prepareInTurn(payer, begun, prepare), signal).catch(
      async (error: unknown) => {
        // A payment the balance cannot cover fails the estimate first, with an error that does
        // not say so: it is refused, typed, instead.
        await affordable(0n, undefined, begun)
        throw error
      },
    )
    turn = ready.turn
    let { prepared } = ready
    await affordable(prepared.fee, prepared.feeToken, ready)
    const quoted = prepared.fee
    return {
      fee: prepared.fee,
      feeToken: prepared.feeToken,
      turn,
      async ready() {
        const validBefore = prepared.transaction.validBefore ?? 0
        if (validBefore >= expires || validBefore - nowInSeconds() >= minValidityLeft)
          return prepared
        const again = await prepare(withKeyAuthorization(payer.account, turn?.keyAuthorization))
        if (again.fee > quoted)
          throw new Error(
            `The payment's fee rose above the ${quoted} quoted while it waited for approval.`,
          )
        prepared = again
        return prepared
      },
    }
  } catch (error) {
    turn?.end()
    throw error
  }
}

export declare namespace prepareAffordable {
  type Options<prepared extends PreparedTransaction> = {
    /** Prepares the transaction as `account`, which carries the key authorization to attach. */
    prepare: (account: Account) => Promise<prepared>
    /** What the payment spends, for the balance and the key's limits. */
    spend: {
      token: Address
      spends: bigint
      /** What `spends` is, for the error: `the payment` (a charge), or `the deposit`. */
      spent?: 'the payment' | 'the deposit' | undefined
      /** The payment's quoted amount, for the error. */
      amount: bigint
      /** The transaction's calls, for the access key's call scopes. */
      calls: readonly KeyCall[]
    }
    /** When the challenge expires (unix s): a transaction valid until then is never prepared again. */
    expires?: number | undefined
    signal: AbortSignal
  }
}

/**
 * Prepares the transaction in the key's turn (`begun`), with the turn's key authorization if it
 * carries one. A transaction prepared without it although the turn carried it means the node
 * refused it: the key landed since the keychain was read (another payer of the same key), so it
 * is known provisioned, the turn ends, and the keychain read is stale.
 */
async function prepareInTurn<prepared extends PreparedTransaction>(
  payer: Payer,
  begun: KeyBegun | undefined,
  prepare: (account: Account) => Promise<prepared>,
): Promise<{ prepared: prepared } & Partial<KeyBegun>> {
  const turn = begun?.turn
  const prepared = await prepare(withKeyAuthorization(payer.account, turn?.keyAuthorization))
  if (!turn || (prepared.transaction as { keyAuthorization?: unknown }).keyAuthorization)
    return { prepared, ...begun }
  await turn.provisioned()
  turn.end()
  return { prepared }
}
