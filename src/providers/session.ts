import type { Challenge } from 'mppx'
import { entryKey } from 'mppx/client'
import { Proof, Session } from 'mppx/tempo'
import { type Account, type Hex, maxUint96 } from 'viem'
import { PaymentRefusedError } from '../errors.js'
import { maxOf, minOf } from '../internal/bigint.js'
import { isPaidClient } from '../internal/paidTransportMarker.js'
import { withinOrigin } from '../internal/sendWithinOrigin.js'
import { raceSignal } from '../internal/signal.js'
import type { ChannelEntry, ChannelStore } from '../stores/ChannelStore.js'
import { memoryChannelStore } from '../stores/memory.js'
import { accessKeyOf } from './accessKey.js'
import type { PaidRequest, PaymentProvider, PreparedPayment } from './PaymentProvider.js'
import { bookOf } from './session/book.js'
import {
  type LiveChannel,
  nextSettled,
  type SessionContext,
  track,
  voucherCredential,
  voucherSlot,
} from './session/channel.js'
import {
  type ClosedChannel,
  closeChannels,
  releaseChannels,
  releaseWhenCollected,
} from './session/close.js'
import type { Endpoint } from './session/endpoint.js'
import { Ledger } from './session/ledger.js'
import { quoteOf } from './session/quote.js'
import { type PaidWith, recoverSession } from './session/recover.js'
import { parseSessionRequest, type SessionRequest } from './session/request.js'
import { acquire, catchUp, type Scope } from './session/scope.js'
import { receiptPosition } from './session/snapshot.js'
import { topUpPayment } from './session/topUp.js'
import type { ChainClient } from './session/transactions.js'

/** A cached challenge is reused only while it has at least this long left (ms). */
const challengeMargin = 5_000

/** The default {@link SessionParameters.writeAhead}. */
export const defaultWriteAhead = 10

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
  const context: SessionContext = {
    account,
    client,
    chainId,
    source: Proof.proofSource({ address: account.address, chainId }),
    ahead: book.ahead,
  }
  // What a channel may hold: `maxDeposit`, and never more than a TIP-1034 (uint96) amount, so that
  // a server's suggestion of any size is capped rather than obeyed.
  const cap = maxDeposit !== undefined && maxDeposit < maxUint96 ? maxDeposit : maxUint96
  const scopes = new Map<string, Scope>()
  /** Which scope (and voucher) each challenge was paid with, for `recover`. */
  const paidWith = new WeakMap<Challenge.Challenge, PaidWith>()
  /** The last accepted challenge per origin + pathname (memory only), for `challengeFor`. */
  const accepted = new Map<string, { challenge: Challenge.Challenge; scope: Scope }>()
  /** Channels this provider gave up on: not taken up again. */
  const passedOver = new Set<Hex>()

  const scopeOf = (origin: string, request: SessionRequest) => {
    const key = entryKey({
      descriptor: { payee: request.recipient, token: request.currency },
      escrow: request.escrow,
      chainId,
    } as ChannelEntry)
    const id = `${origin}\n${key}`
    let scope = scopes.get(id)
    if (!scope) {
      scope = {
        origin,
        key,
        channel: undefined,
        busy: undefined,
        lost: undefined,
        retired: [],
        replaced: false,
      }
      scopes.set(id, scope)
    }
    return scope
  }

  const forget = (scope: Scope) => {
    for (const [key, cached] of accepted) if (cached.scope === scope) accepted.delete(key)
  }

  /** The deposit of a new channel: the preferred one, else the server's, capped by `maxDeposit`. */
  const openingDeposit = (request: SessionRequest) => {
    const wanted = preferredDeposit ?? request.suggestedDeposit ?? request.amount
    // At least one call's price; a greedy suggestion is capped, not obeyed.
    return minOf(maxOf(wanted, request.amount), cap)
  }

  const voucherPayment = (
    scope: Scope,
    channel: LiveChannel,
    request: SessionRequest,
    challenge: Challenge.Challenge,
  ): PreparedPayment => {
    const settle = track(channel)
    const slot = voucherSlot(context, channel, request.amount)
    paidWith.set(challenge, { scope, channel, amount: () => slot.amount })
    return {
      quote: quoteOf(context, request, { amount: request.amount, deposit: 0n, fee: 0n }),
      authorize: async () => voucherCredential(context, challenge, channel, await slot.sign()),
      async commit(receipt) {
        slot.settle('served')
        const position = receiptPosition(receipt, channel.entry)
        if (position) channel.ledger = Ledger.reconcile(channel.ledger, position)
        settle()
      },
      async rollback() {
        slot.settle('refused')
        settle()
      },
    }
  }

  /**
   * `payment`, whose acceptance (a 2xx, receipt or not) keeps its challenge for `challengeFor`:
   * later calls to this URL pay before being asked.
   */
  const remembered = (
    payment: PreparedPayment,
    scope: Scope,
    challenge: Challenge.Challenge,
    url: string,
  ): PreparedPayment => ({
    ...payment,
    async commit(receipt, outcome) {
      await payment.commit(receipt, outcome)
      if (outcome?.accepted && scope.channel) {
        const { origin, pathname } = new URL(url)
        accepted.set(origin + pathname, { challenge, scope })
      }
    },
  })

  /** Sets a channel aside for `close()` (it stays leased): the scope takes another. */
  const retire = (scope: Scope, channel: LiveChannel) => {
    if (scope.channel !== channel) return
    scope.channel = undefined
    scope.retired.push(channel)
    forget(scope)
  }

  const prepare: PaymentProvider['prepare'] = async (parameters) => {
    const payment = await preparePayment(parameters)
    const { scope, url } = payment
    return remembered(payment.payment, scope, parameters.challenge, url)
  }

  const preparePayment = async ({
    challenge,
    request: paid,
    signal,
  }: Parameters<PaymentProvider['prepare']>[0]): Promise<{
    payment: PreparedPayment
    scope: Scope
    url: string
  }> => {
    const { request, reason } = parseSessionRequest(challenge, chainId)
    if (!request) throw new Error(`Not a payable session challenge: ${reason}.`)
    // Refused before anything is touched: a price no channel may hold changes no state.
    if (maxDeposit !== undefined && request.amount > maxDeposit)
      throw new PaymentRefusedError({
        reason: 'maxDeposit',
        amount: request.amount,
        currency: request.currency,
        limit: maxDeposit,
      })
    const scope = scopeOf(new URL(paid.url).origin, request)
    const endpoint: Endpoint = {
      url: paid.url,
      headers: paid.headers,
      fetch: paid.fetch ?? withinOrigin(globalThis.fetch),
    }
    for (;;) {
      if (scope.busy) {
        await raceSignal(scope.busy, signal)
        continue
      }
      const channel = scope.channel
      if (!channel) {
        const payment = await acquire(context, scope, {
          book,
          request,
          challenge,
          endpoint,
          signal,
          cap,
          deposit: openingDeposit(request),
          passedOver,
        })
        if (!payment) continue
        paidWith.set(challenge, { scope })
        return { payment, scope, url: paid.url }
      }
      if (channel.busy) {
        await raceSignal(channel.busy, signal)
        continue
      }
      if (channel.lease.lost) {
        // Another holder has the channel now: nothing more is signed on it here.
        scope.channel = undefined
        forget(scope)
        continue
      }
      channel.endpoint = endpoint
      if (channel.ledger.behind) {
        await catchUp(context, scope, channel, { signal, passedOver })
        continue
      }
      // Payments prepared before this one and not signed yet come first: their vouchers are lower.
      const next = Ledger.next(channel.ledger, channel.unsigned + request.amount)
      // A channel that could not hold the next voucher even topped up to `maxDeposit` is spent:
      // once its payments in flight have settled, it is set aside for close() and another used,
      // so that `maxDeposit` bounds what each channel locks, not what a key may spend.
      if (next > cap) {
        if (channel.pending > 0) await raceSignal(nextSettled(channel), signal)
        else retire(scope, channel)
        continue
      }
      if (next <= channel.entry.deposit)
        return { payment: voucherPayment(scope, channel, request, challenge), scope, url: paid.url }
      paidWith.set(challenge, { scope, channel })
      const payment = await topUpPayment(context, {
        channel,
        request,
        challenge,
        additional: Session.Client.Machine.resolveAutomaticTopUp({
          deposit: channel.entry.deposit,
          maxDeposit: cap,
          requiredCumulative: next,
          suggestedDeposit: preferredDeposit ?? request.suggestedDeposit,
        }),
        signal,
      })
      return { payment, scope, url: paid.url }
    }
  }

  const recover: NonNullable<PaymentProvider['recover']> = async ({ reason, challenge }) => {
    const paid = paidWith.get(challenge)
    if (!paid) return false
    // Only a key the chain really lacks is authorized again (never `KeyAlreadyExists`).
    if (reason === 'keyNotProvisioned')
      return accessKeyOf(account, chainId)?.recover(client) ?? false
    return recoverSession(context, paid, reason, { retire, forget })
  }

  const provider: SessionProvider = {
    acceptPayment: 'tempo/session',
    supports: (challenge) => parseSessionRequest(challenge, chainId).reason === undefined,
    unsupportedReason: (challenge) => parseSessionRequest(challenge, chainId).reason,
    prepare,
    recover,
    challengeFor(request) {
      const url = new URL(request.url)
      const cached = accepted.get(url.origin + url.pathname)
      if (!cached) return undefined
      if (!unexpired(cached.challenge)) {
        accepted.delete(url.origin + url.pathname)
        return undefined
      }
      const { scope } = cached
      if (!scope.channel || scope.busy || scope.channel.busy || scope.channel.ledger.behind)
        return undefined
      // A copy per request, so that `recover` tells its payment from the others'.
      return { ...cached.challenge }
    },
    close: (options) => closeChannels(context, [...scopes.values()], { ...options, forget }),
    release: (options) => releaseChannels(scopes.values(), { ...options, forget }),
  }
  // A provider dropped without release(): its channels go back to the store when it is collected.
  releaseWhenCollected(provider, scopes)
  return provider
}

function unexpired(challenge: Challenge.Challenge) {
  return (
    challenge.expires === undefined || Date.parse(challenge.expires) - challengeMargin > Date.now()
  )
}
