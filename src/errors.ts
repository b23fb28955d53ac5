import { type Hex, BaseError as ViemBaseError } from 'viem'
import { defaultMaxAmount } from './internal/defaults.js'
import { redactError, redactUrls } from './internal/redactUrl.js'
import { tokenAmount } from './internal/tokenAmount.js'
import type { Problem } from './Problem.js'
import { version } from './version.js'

/**
 * viem's `BaseError` (`shortMessage`, `details`, `metaMessages`, `walk`), whose message and
 * `version` name this package's version rather than viem's: viem's own setting for that is global
 * (`setErrorConfig`), and changing it would relabel viem's errors too. Every error of this package
 * extends it.
 *
 * @example
 * ```ts
 * class ExampleError extends BaseError {
 *   constructor() {
 *     super('Something went wrong.', { name: 'ExampleError' })
 *   }
 * }
 * new ExampleError().version // 'viem-mpp@0.1.0'
 * ```
 */
export class BaseError extends ViemBaseError {
  override version = `viem-mpp@${version}`

  constructor(shortMessage: string, parameters?: ConstructorParameters<typeof ViemBaseError>[1]) {
    super(shortMessage, parameters)
    // viem ends the message with `Version: viem@…` unless its error config has no version.
    this.message = this.message.replace(/\nVersion: [^\n]*$/, `\nVersion: ${this.version}`)
  }
}

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
    keys,
    cause,
  }: {
    reason: PaymentRequiredError.Reason
    origin: string
    /** What the server offered, as `method/intent` plus why each was passed over. */
    offered?: readonly string[]
    /** For `noProvider`: where keys were looked for, and why each one found did not fit. */
    keys?: { path: string; passedOver: readonly string[] } | undefined
    /** Why no provider could be found (e.g. an unreadable `keys.toml`). */
    cause?: unknown
  }) {
    super(shortMessages[reason], {
      cause: cause === undefined ? undefined : redactError(cause),
      metaMessages: [
        `Endpoint: ${origin}`,
        ...(offered.length ? ['Offered:', ...offered.map((offer) => `  ${offer}`)] : []),
        ...(keys ? keysFound(keys) : []),
        ...(reason === 'noProvider' ? setupGuidance : []),
        ...(reason === 'invalidKey' ? invalidKeyGuidance : []),
        ...(reason === 'paidChainRpc' ? unpaidClientGuidance : []),
        ...(reason === 'insecureTransport' ? plainHttpGuidance : []),
      ],
      name: 'PaymentRequiredError',
    })
    this.reason = reason
    this.origin = origin
  }
}

export declare namespace PaymentRequiredError {
  type Reason =
    | 'noProvider'
    | 'invalidKey'
    | 'noChallenge'
    | 'noSupportedChallenge'
    | 'redirected'
    | 'insecureTransport'
    | 'paidChainRpc'
}

const shortMessages: Record<PaymentRequiredError.Reason, string> = {
  noProvider: 'The endpoint requires payment, and no payment provider is configured.',
  invalidKey:
    'The endpoint requires payment, and the Tempo key set up for it is malformed: nothing was paid.',
  noChallenge: 'The endpoint answered 402 Payment Required without a usable Payment challenge.',
  noSupportedChallenge: 'The endpoint requires a payment that the configured provider cannot make.',
  redirected:
    'The endpoint redirected the request to another origin, which asked for payment; it is not paid.',
  insecureTransport:
    'The endpoint asked for payment over plain http://; payment credentials are sent only over https:// (or to this machine).',
  paidChainRpc:
    "The default provider cannot pay: the chain's RPC is this paid endpoint, and preparing a payment reads the chain through it.",
}

const invalidKeyGuidance = [
  'Fix it (what is wrong is below), or unset it: TEMPO_PRIVATE_KEY must be 0x and 64 hex digits;',
  'keys.toml is written by the Tempo CLI (`tempo wallet login`).',
]

/** What key discovery found: TEMPO_PRIVATE_KEY unset, and the entries of keys.toml that did not fit. */
const keysFound = ({ path, passedOver }: { path: string; passedOver: readonly string[] }) =>
  passedOver.length
    ? [`No key in ${path} fits:`, ...passedOver.map((reason) => `  ${reason}`)]
    : [
        `No key found: TEMPO_PRIVATE_KEY is not set, and ${path} holds no [[keys]] entry (or does not exist).`,
      ]

const setupGuidance = [
  'To pay, authorize a funded Tempo key. In Node, the transport finds one by itself:',
  '  - TEMPO_PRIVATE_KEY=0x… in the environment, or',
  '  - a [[keys]] entry for this chain in $TEMPO_HOME/wallet/keys.toml (TEMPO_HOME defaults to',
  '    ~/.tempo), which the Tempo CLI writes: `tempo wallet login`.',
  'Or give the transport a provider:',
  "  mppHttp(url, { provider: tempo({ account, client }) })   // import { tempo } from 'viem-mpp'",
  'where `client` is a viem client for the chain that is not this paid transport.',
]

const plainHttpGuidance = [
  'Use the endpoint over https://. A devnet on your own network that only speaks http:// can be',
  "paid all the same by naming its origin: mppHttp(url, { dangerouslyPayOverPlainHttp: ['http://10.0.0.5:8545'] })",
  '(anyone on that network path can then read the credentials, and settle a charge).',
]

const unpaidClientGuidance = [
  'Give the transport a provider whose client reads the chain through an unpaid RPC:',
  "  mppHttp(url, { provider: tempo({ account, client }) })   // import { tempo } from 'viem-mpp'",
]

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
        ...(mentionsExpiringNonceRule(cause, problem) ? localnetChainGuidance : []),
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

/**
 * A Tempo node before T11 (this package's localnet among them) wants an expiring-nonce transaction
 * at nonce 0 and valid for 30 s at most; viem's `tempoLocalnet` prepares it otherwise.
 */
const localnetChainGuidance = [
  'The node applies the localnet rules for expiring nonces (nonce 0, valid for 30 s at most): give',
  "the provider a client on the localnet's own chain, `net.chain` from startLocalnet() or",
  "defineLocalnetChain({ id, rpcUrl }) from 'viem-mpp/testing', rather than viem's tempoLocalnet.",
]

/** Whether the node's answer (in the error's causes or the problem) is that expiring-nonce rule. */
function mentionsExpiringNonceRule(cause: unknown, problem: Problem | undefined) {
  const rule =
    /expiring nonce transaction must have nonce == 0|valid_before .* too far in the future/i
  if (problem?.detail && rule.test(problem.detail)) return true
  for (let error = cause, depth = 0; error && depth < 10; depth++) {
    if (rule.test(String((error as Error).message ?? ''))) return true
    error = (error as Error).cause
  }
  return false
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

export type InvalidPaymentTimeoutErrorType = InvalidPaymentTimeoutError & {
  name: 'InvalidPaymentTimeoutError'
}

/**
 * `paymentTimeout` is not a number of milliseconds a timer can hold: it must be from 0 (no time
 * limit) to 2147483647 (about 24.8 days). Thrown when the transport is made, before any request.
 */
export class InvalidPaymentTimeoutError extends BaseError {
  constructor({ paymentTimeout }: { paymentTimeout: unknown }) {
    super('`paymentTimeout` must be a number of milliseconds from 0 (no limit) to 2147483647.', {
      metaMessages: [`Received: ${String(paymentTimeout)}`],
      name: 'InvalidPaymentTimeoutError',
    })
  }
}

export type InvalidPlainHttpOriginErrorType = InvalidPlainHttpOriginError & {
  name: 'InvalidPlainHttpOriginError'
}

/**
 * An entry of `dangerouslyPayOverPlainHttp` is not a plain-http origin (`http://host:port`, no
 * path, no credentials). Thrown when the transport is made, before any request.
 *
 * @example
 * ```ts
 * import { InvalidPlainHttpOriginError, mppHttp } from 'viem-mpp'
 *
 * mppHttp(url, { dangerouslyPayOverPlainHttp: ['10.0.0.5:8545'] }) // throws: no scheme
 * ```
 */
export class InvalidPlainHttpOriginError extends BaseError {
  constructor({ entry }: { entry: string }) {
    super(
      'Each entry of `dangerouslyPayOverPlainHttp` must be an http:// origin (scheme, host and port; no path).',
      {
        metaMessages: [
          `Received: ${redactUrls(String(entry))}`,
          'For example: http://10.0.0.5:8545',
        ],
        name: 'InvalidPlainHttpOriginError',
      },
    )
  }
}

export type InvalidQuoteErrorType = InvalidQuoteError & { name: 'InvalidQuoteError' }

/**
 * A payment provider's `prepare()` returned a quote the spending policy cannot judge: `field` is
 * missing or of the wrong type (a custom provider written before the field existed, for
 * instance). Nothing was signed; the request fails with it.
 *
 * @example
 * ```ts
 * import { InvalidQuoteError } from 'viem-mpp'
 *
 * if (error instanceof InvalidQuoteError) console.log(error.field) // 'fee'
 * ```
 */
export class InvalidQuoteError extends BaseError {
  /** The quote's field that is missing or invalid, as a path (`fee`, `transfers.0.amount`). */
  readonly field: string

  constructor({ field, expected }: { field: string; expected: string }) {
    super(`The payment provider's quote has no valid \`${field}\`: ${expected}.`, {
      metaMessages: [
        "A PaymentProvider's prepare() returns every field of PaymentQuote (see its documentation).",
      ],
      name: 'InvalidQuoteError',
    })
    this.field = field
  }
}

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
