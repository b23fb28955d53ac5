import type { Challenge } from 'mppx'
import { type Address, type Chain, createClient, http } from 'viem'
import { PaymentRequiredError } from '../errors.js'
import { redactUrl } from '../internal/redactUrl.js'
import { charge } from '../providers/charge.js'
import type { PaymentProvider } from '../providers/PaymentProvider.js'
import { discoverAccount } from './keys.js'

/**
 * The provider `mppHttp` uses in Node when none is given: a Tempo charge paid with the key that
 * {@link discoverAccount} finds for `chain` (and the currency the server asks for), prepared
 * through the chain's own public RPC (`chain.rpcUrls.default.http[0]`). `undefined` when there
 * is no key. `mppHttp` caps its payments at `defaultMaxAmount` unless `maxAmount` is given.
 *
 * Throws `PaymentRequiredError` (`paidChainRpc`) when the chain's RPC is `paidUrl`, the endpoint
 * being paid: preparing a payment reads the chain, and those reads would need paying too.
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
  paidUrl,
}: {
  chain: Chain
  challenges: readonly Challenge.Challenge[]
  env?: Record<string, string | undefined> | undefined
  /** The endpoint the provider is to pay, which its chain client must not be. */
  paidUrl?: string | undefined
}): Promise<PaymentProvider | undefined> {
  const rpcUrl = chain.rpcUrls.default.http[0]
  if (rpcUrl && paidUrl && sameEndpoint(rpcUrl, paidUrl))
    throw new PaymentRequiredError({ reason: 'paidChainRpc', origin: redactUrl(paidUrl) })
  const currency = challenges
    .map((challenge) => (challenge.request as { currency?: unknown }).currency)
    .find((currency): currency is Address => typeof currency === 'string')
  const account = await discoverAccount({ chainId: chain.id, currency, env })
  if (!account) return undefined
  return charge({ account, client: createClient({ chain, transport: http(rpcUrl) }) })
}

/**
 * Whether two URLs name the same endpoint: the same scheme, credentials, host, port, path and
 * query, once normalized (scheme and host case, default port, a trailing slash in the path).
 */
function sameEndpoint(a: string, b: string) {
  const normalize = (url: string) => {
    try {
      const parsed = new URL(url)
      parsed.hash = ''
      parsed.pathname = parsed.pathname.replace(/\/+$/, '')
      return parsed.href
    } catch {
      return url
    }
  }
  return normalize(a) === normalize(b)
}
