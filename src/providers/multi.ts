import type { Challenge } from 'mppx'
import { rankByAcceptPayment } from '../AcceptPayment.js'
import type { PaymentProvider } from './PaymentProvider.js'

/**
 * Combines providers in order of preference: a challenge is paid by the first provider that
 * supports it, and among several challenges the first provider's choice (by its own
 * `acceptPayment` and `select`) wins.
 *
 * @example
 * ```ts
 * import { charge, multi } from 'viem-mpp'
 *
 * const provider = multi([charge({ account, client }), myStripeProvider])
 * ```
 */
export function multi(providers: readonly PaymentProvider[]): PaymentProvider {
  const providerFor = (challenge: Challenge.Challenge) => {
    const provider = providers.find((provider) => provider.supports(challenge))
    if (!provider) throw new Error(`No provider supports ${challenge.method}/${challenge.intent}.`)
    return provider
  }

  return {
    supports: (challenge) => providers.some((provider) => provider.supports(challenge)),
    select(challenges) {
      for (const provider of providers) {
        const supported = rankByAcceptPayment(
          challenges.filter((challenge) => provider.supports(challenge)),
          provider.acceptPayment,
        )
        const chosen = provider.select ? provider.select(supported) : supported[0]
        if (chosen) return chosen
      }
      return undefined
    },
    prepare: (parameters) => providerFor(parameters.challenge).prepare(parameters),
    async recover(parameters) {
      return (await providerFor(parameters.challenge).recover?.(parameters)) ?? false
    },
  }
}
