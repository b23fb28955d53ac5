import type { Challenge } from 'mppx'
import { type Address, type Chain, createClient, http } from 'viem'
import { charge } from '../providers/charge.js'
import type { PaymentProvider } from '../providers/PaymentProvider.js'
import { discoverAccount } from './keys.js'

/**
 * The provider `mppHttp` uses in Node when none is given: a Tempo charge paid with the key that
 * {@link discoverAccount} finds for `chain` (and the currency the server asks for), prepared
 * through the chain's own public RPC. `undefined` when there is no key.
 *
 * @example
 * ```ts
 * import { discoverProvider } from 'viem-mpp/node'
 *
 * const provider = await discoverProvider({ chain: tempo, challenges: [] })
 * ```
 */
export async function discoverProvider({
  chain,
  challenges,
  env,
}: {
  chain: Chain
  challenges: readonly Challenge.Challenge[]
  env?: Record<string, string | undefined> | undefined
}): Promise<PaymentProvider | undefined> {
  const currency = challenges
    .map((challenge) => (challenge.request as { currency?: unknown }).currency)
    .find((currency): currency is Address => typeof currency === 'string')
  const account = await discoverAccount({ chainId: chain.id, currency, env })
  if (!account) return undefined
  return charge({ account, client: createClient({ chain, transport: http() }) })
}
