import type { Challenge } from 'mppx'
import { type Account, maxUint96 } from 'viem'
import { isPaidClient } from '../internal/paidTransportMarker.js'
import { parseSessionRequest } from '../reserve/sessionRequest.js'
import type { ChainClient } from '../reserve/transactions.js'
import type { ChannelStore } from '../stores/ChannelStore.js'
import { memoryChannelStore } from '../stores/memory.js'
import type { PaidRequest, PaymentProvider } from './PaymentProvider.js'
import { payerOf } from './payer.js'
import { bookOf } from './session/book.js'
import type { SessionContext } from './session/channel.js'
import {
  type ClosedChannel,
  closeChannels,
  releaseChannels,
  releaseWhenCollected,
} from './session/close.js'
import { prepareSessionPayment } from './session/pay.js'
import { recoverSession } from './session/recover.js'
import type { Scope } from './session/scope.js'
import { challengeFor, forget, retire, type SessionState } from './session/state.js'

/** The default {@link SessionParameters.writeAhead}. */
const defaultWriteAhead = 10

export type SessionParameters = {
  /** Pays: a local account, or a `viem/tempo` access-key account (which then signs the vouchers). */
  account: Account
  /**
   * A viem client for the chain, used to prepare channel transactions and read channels. It must
   * not use the paid transport itself.
   */
  client: ChainClient
  /** Where channels are kept between calls (and processes). @default memoryChannelStore() */
  store?: ChannelStore | undefined
  /**
   * The most a channel may hold, in base units of the currency: its opening deposit and its
   * top-ups together. A server's greater `suggestedDeposit` is capped to it. @default no cap
   */
  maxDeposit?: bigint | undefined
  /**
   * The deposit of a new channel (and the preferred top-up), in base units. @default the
   * server's `suggestedDeposit`, else one call's price; capped by `maxDeposit`
   */
  deposit?: bigint | undefined
  /**
   * How many calls' worth the store's mark is written ahead of the vouchers signed (in a store
   * with a pool), rewritten in the background once half of it is used: about one store write per
   * half that many calls, and, after a crash, a mark at most that many prices above what was
   * served (what a tool that knows nothing of the ledger would start from). `1`: an exact mark,
   * one write per call, which the call waits for (as with a store without a pool, such as
   * mppx's own). @default 10
   */
  writeAhead?: number | undefined
}

/** Options of {@link SessionProvider.close} and {@link SessionProvider.release}. */
export type SessionCloseOptions = {
  /** Ends the wait (for calls in flight, and for each server's answer). */
  signal?: AbortSignal | undefined
  /** How long it may take in all, in ms. @default 30_000 */
  timeout?: number | undefined
}

export type { ClosedChannel }

export type SessionProvider = PaymentProvider & {
  challengeFor(request: PaidRequest): Challenge.Challenge | undefined
  /**
   * Cooperatively closes every channel this provider holds (those it set aside too): the server
   * settles what it charged and the rest of the deposit is refunded, in one transaction per
   * channel; a closed channel leaves the store. Calls already paying on a channel end first; a
   * call made meanwhile waits for the close, then takes another channel. Every channel is tried
   * within `timeout`; if any cannot be closed, it throws once the others are, naming those still
   * open on chain (they stay in the store).
   */
  close(options?: SessionCloseOptions): Promise<ClosedChannel[]>
  /**
   * Hands every channel this provider holds back to the store, its ledger written exactly, for
   * the next run or another process to continue; a later call takes one again. Calls in flight
   * end first (within `timeout`). A process that ends normally does this by itself.
   */
  release(options?: SessionCloseOptions): Promise<void>
}

/**
 * Pays TIP-1034 precompile session challenges (`sessionProtocol: "v2"`): opens a payment channel
 * per endpoint origin and payee, then pays each call with a signed cumulative voucher, at about a
 * millisecond of signing and no chain work per call.
 *
 * - **An exact ledger.** Each call's voucher adds exactly its price to what the server served;
 *   a refused or rejected payment adds nothing, and a voucher that arrived out of order is paid
 *   from the higher one the server holds. What the server claims never raises a voucher.
 * - **One writer per channel.** A channel is leased from the store by one provider at a time; a
 *   second process (or provider) on the same store takes another free channel, or opens one: a
 *   pool. The next holder starts exactly where the last one stopped: the store keeps the
 *   highest voucher signed, written ahead `writeAhead` calls at a time (in the background once half
 *   of it is used) and exactly on release.
 * - **Take-up.** A channel whose holder died, or that another tool wrote, is continued from the
 *   server's session snapshot (its highest voucher, signature checked) when it sends one, else
 *   from a search one price at a time, after the spending policy approved the call.
 * - The open is an expiring-nonce transaction prepared before anything is signed, so its quote
 *   shows the deposit and the most fee; the first voucher rides in it. The channel is written
 *   to the store before the open is sent. An open without an answer, or rejected, may still land
 *   until its transaction expires: nothing else is opened on its scope until the chain decides.
 * - When the deposit cannot cover the next voucher, the channel is topped up (within
 *   `maxDeposit`); a channel spent up to `maxDeposit` is set aside (kept for `close()`) and
 *   another one used. A price above `maxDeposit` is refused (`PaymentRefusedError`, reason
 *   `maxDeposit`) and changes nothing.
 * - After the first accepted payment on a URL, `challengeFor` lets each later call carry its
 *   voucher before the server asks: one HTTP request per call.
 * - A channel the server no longer knows (`410`) is set aside (kept for `close()`, marked unusable
 *   in the store while funded on chain) and one new channel opened in its place.
 *
 * @example
 * ```ts
 * import { createPublicClient, http } from 'viem'
 * import { tempo } from 'viem/chains'
 * import { mppHttp, session } from 'viem-mpp'
 *
 * const provider = session({ account, client: createPublicClient({ chain: tempo, transport: http() }) })
 * const client = createPublicClient({ chain: tempo, transport: mppHttp(url, { provider }) })
 * await client.getBlockNumber()
 * const [{ settled, refunded }] = await provider.close()
 * ```
 */
export function session({
  account,
  client,
  store = memoryChannelStore(),
  maxDeposit,
  deposit: preferredDeposit,
  writeAhead = defaultWriteAhead,
}: SessionParameters): SessionProvider {
  if (isPaidClient(client))
    throw new Error('session(): `client` must not use a paid (mppHttp) transport.')
  if (!Number.isSafeInteger(writeAhead) || writeAhead < 1)
    throw new Error('session(): `writeAhead` must be a whole number of calls, at least 1.')
  const chainId = client.chain.id
  const book = bookOf(store, writeAhead)
  const payer = payerOf(account, chainId)
  const context: SessionContext = { payer, client, chainId, ahead: book.ahead }
  const state: SessionState = {
    context,
    book,
    // Never more than a TIP-1034 (uint96) amount, so that a server's suggestion of any size is
    // capped rather than obeyed.
    cap: maxDeposit !== undefined && maxDeposit < maxUint96 ? maxDeposit : maxUint96,
    maxDeposit,
    preferredDeposit,
    scopes: new Map(),
    paidWith: new WeakMap(),
    accepted: new Map(),
    passedOver: new Set(),
  }
  const forgetScope = (scope: Scope) => forget(state, scope)

  const provider: SessionProvider = {
    acceptPayment: 'tempo/session',
    supports: (challenge) => parseSessionRequest(challenge, chainId).reason === undefined,
    unsupportedReason: (challenge) => parseSessionRequest(challenge, chainId).reason,
    prepare: (parameters) => prepareSessionPayment(state, parameters),
    async recover({ reason, challenge }) {
      const paid = state.paidWith.get(challenge)
      if (!paid) return false
      // Only a key the chain really lacks is authorized again (never `KeyAlreadyExists`).
      if (reason === 'keyNotProvisioned') return payer.key?.recover(client) ?? false
      return recoverSession(context, paid, reason, {
        retire: (scope, channel) => retire(state, scope, channel),
        forget: forgetScope,
      })
    },
    challengeFor: (request) => challengeFor(state, request),
    close: (options) =>
      closeChannels(context, [...state.scopes.values()], { ...options, forget: forgetScope }),
    release: (options) =>
      releaseChannels(state.scopes.values(), { ...options, forget: forgetScope }),
  }
  // A provider dropped without release(): its channels go back to the store when it is collected.
  releaseWhenCollected(provider, book)
  return provider
}
