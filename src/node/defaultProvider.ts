import { dirname, join } from 'node:path'
import type { Challenge } from 'mppx'
import { type Address, type Chain, createClient, http } from 'viem'
import { PaymentRequiredError } from '../errors.js'
import { label } from '../flow/challenges.js'
import { defaultMaxDeposit } from '../internal/defaults.js'
import { redactUrl } from '../internal/redactUrl.js'
import { warnOnce } from '../internal/warnOnce.js'
import { charge } from '../providers/charge.js'
import type { PaymentProvider } from '../providers/PaymentProvider.js'
import { tempo } from '../providers/tempo.js'
import { fileChannelStore } from './fileChannelStore.js'
import { discoverKey, KeyDiscoveryError, keysTomlPath } from './keys.js'

/**
 * The provider `mppHttp` uses in Node when none is given: {@link tempo} — a TIP-1034 session
 * where the server offers one, else a charge — paid with the key that `discoverAccount` finds
 * for `chain` (and the currency the server asks for), prepared through the chain's own public
 * RPC (`chain.rpcUrls.default.http[0]`). Its channels are kept in {@link fileChannelStore}
 * (`$TEMPO_HOME/wallet/channels.db`), so a script's later runs reuse the channel its first run
 * opened; a channel holds at most `defaultMaxDeposit`. On a Node without `node:sqlite` (Node 20),
 * found when the provider is made, it pays charges only: a channel kept in memory would lock a
 * deposit per run that no store records.
 * `mppHttp` caps each payment (a charge, a session's deposit or top-up) at `defaultMaxAmount`
 * unless `maxAmount` is given.
 *
 * Throws `PaymentRequiredError`:
 * - `paidChainRpc` when the chain's RPC is `paidUrl`, the endpoint being paid: preparing a
 *   payment reads the chain, and those reads would need paying too;
 * - `noProvider` when no key fits, saying how to set one up, what the server offered and why
 *   each key found was passed over (never quoting key material);
 * - `invalidKey` when `TEMPO_PRIVATE_KEY` or `keys.toml` is malformed (what is wrong is its
 *   cause, without key material).
 *
 * @example
 * ```ts
 * import { discoverProvider } from 'viem-mpp/node'
 *
 * const provider = await discoverProvider({ chain: tempo, challenges, paidUrl })
 * ```
 */
export async function discoverProvider({
  chain,
  challenges,
  env = process.env,
  paidUrl,
}: {
  chain: Chain
  challenges: readonly Challenge.Challenge[]
  env?: Record<string, string | undefined> | undefined
  /** The endpoint the provider is to pay, which its chain client must not be. */
  paidUrl?: string | undefined
}): Promise<PaymentProvider> {
  const rpcUrl = chain.rpcUrls.default.http[0]
  const origin = redactUrl(paidUrl ?? rpcUrl ?? '')
  if (rpcUrl && paidUrl && sameEndpoint(rpcUrl, paidUrl))
    throw new PaymentRequiredError({ reason: 'paidChainRpc', origin })
  const currency = challenges
    .map((challenge) => (challenge.request as { currency?: unknown }).currency)
    .find((currency): currency is Address => typeof currency === 'string')
  const { account, path, passedOver } = await discoverKey({
    chainId: chain.id,
    currency,
    env,
  }).catch((error: unknown) => {
    // A key that is there but malformed: that, not a missing provider, is what to fix.
    if (error instanceof KeyDiscoveryError)
      throw new PaymentRequiredError({ reason: 'invalidKey', origin, cause: error })
    throw error
  })
  if (!account)
    throw new PaymentRequiredError({
      reason: 'noProvider',
      origin,
      offered: challenges.map(describeChallenge),
      keys: { path, passedOver },
    })
  const client = createClient({ chain, transport: http(rpcUrl) })
  // Without node:sqlite (which fileChannelStore needs), a channel could be kept in memory only: each
  // run of a script would lock a new deposit that no store records. Charges lock nothing.
  if (!process.getBuiltinModule?.('node:sqlite')) {
    warnChargesOnly()
    return chargesOnly(charge({ account, client }))
  }
  return tempo({
    account,
    client,
    store: fileChannelStore(join(dirname(keysTomlPath(env)), 'channels.db')),
    maxDeposit: defaultMaxDeposit,
  })
}

/** Says once per process that this Node pays charges only, where a newer one would open sessions. */
function warnChargesOnly() {
  warnOnce(
    'VIEM_MPP_CHARGES_ONLY',
    'node:sqlite',
    `this Node (${process.version}) has no node:sqlite, so the default provider pays charges only: on Node >= 22.13 it would pay sessions (one deposit, then vouchers, no fee per call).`,
  )
}

/** `provider`, saying why it passes over a session: this Node cannot keep a channel. */
function chargesOnly(provider: PaymentProvider): PaymentProvider {
  return {
    ...provider,
    unsupportedReason: (challenge) =>
      challenge.intent === 'session'
        ? "the default provider keeps session channels in Tempo's channel database, which needs node:sqlite (Node >= 22.13); on this Node it pays charges only. Pass `provider: session({ account, client, store })` to pay sessions here."
        : provider.unsupportedReason?.(challenge),
  }
}

/** A challenge, the way the server offered it: `method/intent: amount of currency`. */
function describeChallenge(challenge: Challenge.Challenge) {
  const { amount, currency } = challenge.request as { amount?: unknown; currency?: unknown }
  return amount === undefined || currency === undefined
    ? label(challenge)
    : `${label(challenge)}: ${String(amount)} base units of ${String(currency)}`
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
