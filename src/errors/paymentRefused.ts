import { defaultMaxAmount } from '../internal/defaults.js'
import { redactError } from '../internal/redactUrl.js'
import { tokenAmount } from '../internal/tokenAmount.js'
import { BaseError, userRejectedCode } from './base.js'

export type PaymentRefusedErrorType = PaymentRefusedError & { name: 'PaymentRefusedError' }

/**
 * A payment was refused before anything was signed or sent: it exceeded `maxAmount` or the
 * remaining `budget` (its amount plus its most fee), `onPaymentRequired` returned `false`, the
 * payer's balance cannot cover it, or the paying access key cannot make it (`accessKeyLimit`).
 *
 * @example
 * ```ts
 * import { PaymentRefusedError } from 'viem-mpp'
 *
 * const refused = error instanceof PaymentRefusedError && error.reason === 'budget'
 * ```
 */
export class PaymentRefusedError extends BaseError {
  readonly code = userRejectedCode
  /** Which rule refused the payment. */
  readonly reason: PaymentRefusedError.Reason
  /** The payment's cost in base units of `currency`. */
  readonly amount: bigint
  /** The most its transaction fee could cost, in base units of its fee token. */
  readonly fee: bigint
  /** The TIP-20 token the payment is in. */
  readonly currency: string
  /** For `accessKeyLimit`: the access key's limit that the payment breaks (to show what is left). */
  readonly accessKey: PaymentRefusedError.AccessKeyLimit | undefined

  constructor({
    reason,
    amount,
    fee = 0n,
    currency,
    feeToken = currency,
    limit,
    balance,
    accessKey,
    cause,
  }: {
    reason: PaymentRefusedError.Reason
    amount: bigint
    /** The payment's most fee (counted with `amount` against `budget`). */
    fee?: bigint | undefined
    currency: string
    feeToken?: string | undefined
    /** The limit it broke (`maxAmount`, or what is left of `budget`). */
    limit?: bigint | undefined
    /** For `insufficientFunds`: the payer's balance of a token, and what the payment needs of it. */
    balance?: PaymentRefusedError.Shortfall | undefined
    /** For `accessKeyLimit`: the access key's limit that the payment breaks. */
    accessKey?: PaymentRefusedError.AccessKeyLimit | undefined
    /** What `onPaymentRequired` threw, if it threw. */
    cause?: unknown
  }) {
    super(refusals[reason], {
      cause: cause === undefined ? undefined : redactError(cause),
      metaMessages: [
        `Amount: ${amount} (base units of ${currency})`,
        ...(fee > 0n ? [`Fee: at most ${fee} (base units of ${feeToken})`] : []),
        ...(limit === undefined ? [] : [`Limit: ${limit}`]),
        ...(reason === 'maxAmount' ? [maxAmountHint] : []),
        ...(balance ? shortfallOf(balance) : []),
        ...(accessKey ? [accessKeyLimitOf(accessKey)] : []),
      ],
      name: 'PaymentRefusedError',
    })
    this.reason = reason
    this.amount = amount
    this.fee = fee
    this.currency = currency
    this.accessKey = accessKey
  }
}

export declare namespace PaymentRefusedError {
  type Reason =
    | 'maxAmount'
    | 'budget'
    | 'fleetBudget'
    | 'onPaymentRequired'
    | 'insufficientFunds'
    | 'maxDeposit'
    | 'accessKeyLimit'
  /**
   * Why an access key cannot make a payment: revoked, expired, short of a token's limit, or not
   * allowed one of the transaction's calls by its call scopes.
   */
  type AccessKeyLimit =
    | { revoked: true }
    | { expiredAt: bigint }
    | { token: string; remaining: bigint; needed: bigint }
    | { call: AccessKeyCall; scopes: readonly AccessKeyScope[] }
  /** A payer's balance of `token` short of what a payment `needed`, and what adds up to it. */
  type Shortfall = {
    payer: string
    token: string
    available: bigint
    needed: bigint
    /** What `needed` is made of: the payment, a session's deposit, the most fee. */
    parts: readonly { label: string; amount: bigint }[]
  }
  /** A call of the payment transaction: its target, function and (for a transfer) recipient. */
  type AccessKeyCall = {
    target: string
    selector: string
    function?: string | undefined
    recipient?: string | undefined
  }
  /** One call an access key may make: any function of `target` when no `selector` is given. */
  type AccessKeyScope = {
    target: string
    selector?: string | undefined
    recipients?: readonly string[] | undefined
  }
}

/** What an `insufficientFunds` refusal says: whose balance, how much, and what adds up to the need. */
function shortfallOf({ payer, token, available, needed, parts }: PaymentRefusedError.Shortfall) {
  const sum = parts
    .filter(({ amount }) => amount > 0n)
    .map(({ label, amount }) => `${label} ${tokenAmount(amount, token)}`)
    .join(' + ')
  return [
    `Payer: ${payer}`,
    `Balance: ${tokenAmount(available, token)}; needed: ${tokenAmount(needed, token)}${sum ? ` (${sum})` : ''}. In base units: ${available} of ${needed}.`,
  ]
}

function accessKeyLimitOf(limit: PaymentRefusedError.AccessKeyLimit) {
  if ('revoked' in limit) return 'Access key: revoked.'
  if ('expiredAt' in limit)
    return `Access key: expired at ${new Date(Number(limit.expiredAt) * 1000).toISOString()} (unix ${limit.expiredAt}).`
  if ('call' in limit) {
    const { call, scopes } = limit
    const allowed = scopes.map(
      ({ target, selector, recipients }) =>
        `${selector ?? 'any function'} on ${target}${recipients ? ` to ${recipients.join(', ')}` : ''}`,
    )
    return `Access key: its call scopes do not allow ${call.function ?? 'the call'} (${call.selector}) on ${call.target}${call.recipient ? ` to ${call.recipient}` : ''}; they allow ${allowed.length ? allowed.join('; ') : 'no calls'}.`
  }
  return `Access key: remaining limit ${limit.remaining} of token ${limit.token} is below the ${limit.needed} the payment spends of it (amount + fee).`
}

/** How to raise the limit, whether it was given or is the default provider's cap. */
const maxAmountHint = `Without \`maxAmount\`, the default provider pays at most ${defaultMaxAmount} base units (1 USD) per payment; pass \`maxAmount\` to mppHttp to change it.`

const refusals: Record<PaymentRefusedError.Reason, string> = {
  maxAmount: 'The payment exceeds `maxAmount`; nothing was paid.',
  budget: 'The payment exceeds what is left of `budget`; nothing was paid.',
  fleetBudget:
    "The payment exceeds what is left of the channel store's fleet `budget`; nothing was signed.",
  onPaymentRequired: '`onPaymentRequired` refused the payment; nothing was paid.',
  insufficientFunds:
    "The payer's balance cannot cover the payment and its fee; nothing was signed or paid.",
  maxDeposit:
    "The session channel's deposit would exceed the provider's `maxDeposit`; nothing was paid.",
  accessKeyLimit:
    'The access key cannot make the payment (revoked, expired, over its spending limit, or not allowed the call); nothing was signed or paid.',
}
