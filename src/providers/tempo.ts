import type { Account } from 'viem'
import type { ChainClient } from '../reserve/transactions.js'
import type { ChannelStore } from '../stores/ChannelStore.js'
import { charge } from './charge.js'
import { multi } from './multi.js'
import type { PaymentProvider } from './PaymentProvider.js'
import { type SessionProvider, session } from './session.js'

export type TempoParameters = {
  /** Pays: a local account, or a `viem/tempo` access-key account. */
  account: Account
  /** A viem client for the chain; it must not use the paid transport itself. */
  client: ChainClient
  /** Where session channels are kept. @default memoryChannelStore() */
  store?: ChannelStore | undefined
  /** The most a session channel may hold, in base units (see `session`). @default no cap */
  maxDeposit?: bigint | undefined
}

export type TempoProvider = PaymentProvider & Pick<SessionProvider, 'challengeFor' | 'close'>

/**
 * Pays Tempo challenges the cheapest way the server offers: a TIP-1034 session (one channel, a
 * voucher per call) where there is one, else a charge (one transfer per call). It asks for them
 * in that order (`Accept-Payment: tempo/session, tempo/charge;q=0.5`).
 *
 * @example
 * ```ts
 * import { mppHttp, tempo } from 'viem-mpp'
 *
 * const provider = tempo({ account, client: chainClient })
 * const client = createPublicClient({ chain, transport: mppHttp(url, { provider }) })
 * // …
 * await provider.close()
 * ```
 */
export function tempo({ account, client, store, maxDeposit }: TempoParameters): TempoProvider {
  const sessions = session({ account, client, store, maxDeposit })
  const charges = charge({ account, client })
  const both = multi([sessions, charges])
  return {
    ...both,
    acceptPayment: 'tempo/session, tempo/charge;q=0.5',
    unsupportedReason: (challenge) =>
      (challenge.intent === 'session' ? sessions : charges).unsupportedReason?.(challenge),
    challengeFor: (request) => sessions.challengeFor(request),
    close: () => sessions.close(),
  }
}
