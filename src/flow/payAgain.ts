import type { Challenge } from 'mppx'
import type { PaymentFailedError } from '../errors.js'
import { raceSignal } from '../internal/signal.js'
import type { Problem, Rejection } from '../Problem.js'
import type { PaymentProvider } from '../providers/PaymentProvider.js'
import { clockSkew, expiredByOwnClock } from './challenges.js'
import { settling } from './payment.js'

/** A rejected payment, as {@link payAgainRules} judges it. */
export type RejectedPayment = {
  challenge: Challenge.Challenge
  /** Whether the challenge was pre-sent rather than taken from a 402. */
  presented: boolean
  bearer: boolean
  problem: Problem | undefined
}

/**
 * When one request may pay again after the server rejected a payment: only for a reason the
 * flow can act on, and a bearer payment, which the server may still hold, only for one the client
 * checks for itself. Its state is the request's: the benefit of clock skew is given once, and a
 * missing key is recovered from once.
 *
 * @example
 * ```ts
 * const rules = payAgainRules(provider, signal)
 * await rules.assertMayPayAgain(reason, { challenge, presented, bearer, problem }, rejected)
 * ```
 */
export function payAgainRules(provider: PaymentProvider, signal: AbortSignal) {
  // Whether a bearer payment was made again on the benefit of clock skew.
  let skewGranted = false
  // Whether a key was found unprovisioned for this request: its authorization is attached once.
  let keyRecovered = false

  return {
    /** Throws (made by `rejected`) unless a fresh challenge may be paid after `reason`. */
    async assertMayPayAgain(
      reason: Rejection,
      { challenge, presented, bearer, problem }: RejectedPayment,
      rejected: (shortMessage: string, cause?: unknown) => PaymentFailedError,
    ) {
      if (reason === 'challengeExpired' || reason === 'rejected') {
        // A pre-sent challenge was a guess that the server still takes it: a 402 it does not
        // explain asks for a fresh challenge, as it would have for the request sent unpaid.
        if (reason === 'rejected' && !presented) throw rejected('The server rejected the payment.')
        if (!bearer) return
        // A bearer payment is made again only if the client sees for itself that its challenge
        // expired: a server that lies about it is paid once. A server clock running ahead gets
        // the benefit of the doubt once per request, so that minting challenges about to
        // expire does not collect every round.
        const withinSkew = !expiredByOwnClock(challenge, 0)
        if (!expiredByOwnClock(challenge, clockSkew) || (withinSkew && skewGranted))
          throw rejected(
            reason === 'rejected'
              ? 'The server rejected the payment.'
              : 'The server said the challenge had expired, but it had not; the payment is not made again.',
          )
        skewGranted ||= withinSkew
        return
      }
      if (reason === 'keyNotProvisioned') {
        if (keyRecovered)
          throw rejected('The server said twice that the access key is not provisioned.')
        keyRecovered = true
      }
      // The provider acts on the reason; for a bearer payment, it checks it itself (e.g. on chain).
      const recovered = await raceSignal(
        settling(() => provider.recover?.({ reason, challenge, problem })),
        signal,
      ).catch((error: unknown) => {
        throw rejected('The server rejected the payment, and recovering failed.', error)
      })
      if (recovered !== true) throw rejected('The server rejected the payment.')
    },
  }
}
