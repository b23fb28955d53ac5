import { redactError } from '../internal/redactUrl.js'
import { BaseError, userRejectedCode } from './base.js'

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
