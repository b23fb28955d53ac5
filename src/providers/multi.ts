import type { Challenge } from 'mppx'
import { rankByAcceptPayment } from '../AcceptPayment.js'
import type { PaymentProvider } from './PaymentProvider.js'

/**
 * Combines providers in order of preference: a challenge is paid by the first provider that
 * supports it, and among several challenges the first provider's choice (by its own
 * `acceptPayment` and `select`) wins — and is paid by that provider.
 *
 * @example
 * ```ts
 * import { charge, multi } from 'viem-mpp'
 *
 * const provider = multi([charge({ account, client }), myStripeProvider])
 * ```
 */
export function multi(providers: readonly PaymentProvider[]): PaymentProvider {
  // Who chose each challenge pays it, even if an earlier provider also supports it.
  const chosenBy = new WeakMap<Challenge.Challenge, PaymentProvider>()
  const providerFor = (challenge: Challenge.Challenge) => {
    const provider =
      chosenBy.get(challenge) ?? providers.find((provider) => provider.supports(challenge))
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
        if (chosen && supported.includes(chosen)) {
          chosenBy.set(chosen, provider)
          return chosen
        }
      }
      return undefined
    },
    prepare: (parameters) => providerFor(parameters.challenge).prepare(parameters),
    async recover(parameters) {
      return (await providerFor(parameters.challenge).recover?.(parameters)) ?? false
    },
  }
}
