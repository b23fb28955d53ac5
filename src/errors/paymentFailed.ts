import { redactError } from '../internal/redactUrl.js'
import type { Problem } from '../Problem.js'
import { BaseError, transactionRejectedCode } from './base.js'

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
