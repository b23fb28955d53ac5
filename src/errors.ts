import { BaseError } from 'viem'
import { redactError } from './internal/redactUrl.js'
import type { Problem } from './Problem.js'

/**
 * Error codes that viem's `fallback()` treats as final (its default `shouldThrow`), so that it
 * never moves on to another transport after a payment decision. Inside `fallback()`, viem wraps
 * the error in its `UserRejectedRequestError` / `TransactionRejectedRpcError`; find ours with
 * `error.walk((e) => e instanceof PaymentRefusedError)`.
 */
const userRejectedCode = 4001
const transactionRejectedCode = -32003

export type PaymentRequiredErrorType = PaymentRequiredError & { name: 'PaymentRequiredError' }

/**
 * The server answered `402 Payment Required` and nothing here can pay it: no provider, no
 * `Payment` challenge at all, or none that the provider supports. Nothing was paid.
 *
 * @example
 * ```ts
 * import { PaymentRequiredError } from 'viem-mpp'
 *
 * try {
 *   await client.getBlockNumber()
 * } catch (error) {
 *   if (error instanceof PaymentRequiredError) console.log(error.reason)
 * }
 * ```
 */
export class PaymentRequiredError extends BaseError {
  readonly code = userRejectedCode
  /** Why nothing could pay. */
  readonly reason: PaymentRequiredError.Reason
  /** Origin of the endpoint (no path, query or credentials). */
  readonly origin: string

  constructor({
    reason,
    origin,
    offered = [],
    cause,
  }: {
    reason: PaymentRequiredError.Reason
    origin: string
    /** What the server offered, as `method/intent` plus why each was passed over. */
    offered?: readonly string[]
    /** Why no provider could be found (e.g. an unreadable `keys.toml`). */
    cause?: unknown
  }) {
    super(shortMessages[reason], {
      cause: cause === undefined ? undefined : redactError(cause),
      metaMessages: [
        `Endpoint: ${origin}`,
        ...(offered.length ? ['Offered:', ...offered.map((offer) => `  ${offer}`)] : []),
        ...(reason === 'noProvider' ? setupGuidance : []),
      ],
      name: 'PaymentRequiredError',
    })
    this.reason = reason
    this.origin = origin
  }
}

export declare namespace PaymentRequiredError {
  type Reason = 'noProvider' | 'noChallenge' | 'noSupportedChallenge' | 'redirected'
}

const shortMessages: Record<PaymentRequiredError.Reason, string> = {
  noProvider: 'The endpoint requires payment, and no payment provider is configured.',
  noChallenge: 'The endpoint answered 402 Payment Required without a usable Payment challenge.',
  noSupportedChallenge: 'The endpoint requires a payment that the configured provider cannot make.',
  redirected:
    'The endpoint redirected the request to another origin, which asked for payment; it is not paid.',
}

const setupGuidance = [
  'To pay, authorize a funded Tempo key. In Node, the transport finds one by itself:',
  '  - TEMPO_PRIVATE_KEY=0x… in the environment, or',
  '  - a [[keys]] entry for this chain in $TEMPO_HOME/wallet/keys.toml (`tempo wallet login`).',
  'Or give the transport a provider:',
  "  mppHttp(url, { provider: charge({ account, client }) })   // import { charge } from 'viem-mpp'",
  'where `client` is a viem client for the chain that is not this paid transport.',
]

export type PaymentRefusedErrorType = PaymentRefusedError & { name: 'PaymentRefusedError' }

/**
 * A payment was refused before anything was signed or sent: it exceeded `maxAmount` or the
 * remaining `budget`, or `onPaymentRequired` returned `false`.
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
  /** The TIP-20 token the payment is in. */
  readonly currency: string

  constructor({
    reason,
    amount,
    currency,
    limit,
    cause,
  }: {
    reason: PaymentRefusedError.Reason
    amount: bigint
    currency: string
    /** The limit it broke (`maxAmount`, or what is left of `budget`). */
    limit?: bigint | undefined
    /** What `onPaymentRequired` threw, if it threw. */
    cause?: unknown
  }) {
    super(refusals[reason], {
      cause: cause === undefined ? undefined : redactError(cause),
      metaMessages: [
        `Amount: ${amount} (base units of ${currency})`,
        ...(limit === undefined ? [] : [`Limit: ${limit}`]),
      ],
      name: 'PaymentRefusedError',
    })
    this.reason = reason
    this.amount = amount
    this.currency = currency
  }
}

export declare namespace PaymentRefusedError {
  type Reason = 'maxAmount' | 'budget' | 'onPaymentRequired'
}

const refusals: Record<PaymentRefusedError.Reason, string> = {
  maxAmount: 'The payment exceeds `maxAmount`; nothing was paid.',
  budget: 'The payment exceeds what is left of `budget`; nothing was paid.',
  onPaymentRequired: '`onPaymentRequired` refused the payment; nothing was paid.',
}

export type PaymentFailedErrorType = PaymentFailedError & { name: 'PaymentFailedError' }

/**
 * A payment was made or attempted, and the server still did not accept the request. `settled`
 * tells whether the payment may have been taken: it is `true` whenever the outcome is unknown
 * (the connection was lost after the credential left, or the server failed after accepting it),
 * and such a payment is never made again.
 *
 * @example
 * ```ts
 * import { PaymentFailedError } from 'viem-mpp'
 *
 * if (error instanceof PaymentFailedError) console.log(error.status, error.problem?.type)
 * ```
 */
export class PaymentFailedError extends BaseError {
  readonly code = transactionRejectedCode
  /** Origin of the endpoint (no path, query or credentials). */
  readonly origin: string
  /** HTTP status of the last answer, if one came. */
  readonly status: number | undefined
  /** The server's problem details (RFC 9457), if it sent any. */
  readonly problem: Problem | undefined
  /** Whether the payment may have been taken (and was counted against the budget). */
  readonly settled: boolean

  constructor({
    shortMessage,
    origin,
    status,
    problem,
    settled,
    cause,
  }: PaymentFailedError.Parameters) {
    super(shortMessage, {
      cause: cause === undefined ? undefined : redactError(cause),
      metaMessages: [
        `Endpoint: ${origin}`,
        ...(status === undefined ? [] : [`Status: ${status}`]),
        ...(problem?.type ? [`Problem: ${problem.type}`] : []),
        ...(problem?.detail ? [`Detail: ${problem.detail}`] : []),
        settled
          ? 'The payment may have been taken; it will not be made again.'
          : 'Nothing was taken.',
      ],
      name: 'PaymentFailedError',
    })
    this.origin = origin
    this.status = status
    this.problem = problem
    this.settled = settled
  }
}

export declare namespace PaymentFailedError {
  type Parameters = {
    shortMessage: string
    origin: string
    status?: number | undefined
    problem?: Problem | undefined
    settled: boolean
    cause?: unknown
  }
}

/** Any error this package raises for a payment. */
export type PaymentError = PaymentRequiredError | PaymentRefusedError | PaymentFailedError

/** Whether `error` is one of this package's payment errors. */
export function isPaymentError(error: unknown): error is PaymentError {
  return (
    error instanceof PaymentRequiredError ||
    error instanceof PaymentRefusedError ||
    error instanceof PaymentFailedError
  )
}
