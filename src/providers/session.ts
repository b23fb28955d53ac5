import { Challenge, Credential, type Receipt } from 'mppx'
import { entryKey, type ChannelStore as MppxChannelStore } from 'mppx/client'
import { Proof, Session } from 'mppx/tempo'
import { type Account, type Hash, type Hex, isAddressEqual } from 'viem'
import { signTransaction, waitForTransactionReceipt } from 'viem/actions'
import { PaymentRefusedError } from '../errors.js'
import { decodeChallenges } from '../flow/challenges.js'
import { isPaidClient } from '../internal/paidTransportMarker.js'
import { raceSignal } from '../internal/signal.js'
import type { ChannelEntry, ChannelStore } from '../stores/ChannelStore.js'
import { memoryChannelStore } from '../stores/memory.js'
import type {
  PaidRequest,
  PaymentProvider,
  PaymentQuote,
  PreparedPayment,
} from './PaymentProvider.js'
import { parseSessionRequest, type SessionRequest } from './session/request.js'
import {
  assertAffordable,
  type ChainClient,
  openCall,
  prepareChannelTransaction,
  randomValidAfter,
  signerOf,
  signOpen,
  signVoucher,
  stillValid,
  topUpCall,
} from './session/transactions.js'

const { Chain, Protocol } = Session.Precompile

/** A cached challenge is reused only while it has at least this long left (ms). */
const challengeMargin = 5_000
/** How often the chain is asked whether an open whose answer was lost has landed (ms). */
const lostOpenPoll = 1_000
/** Calls' worth of voucher amounts a process reserves at a time in a store shared by processes. */
const blockCalls = 100n

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
}

/** What {@link SessionProvider.close} did to one channel. */
export type ClosedChannel = {
  channelId: Hex
  /** Paid to the payee: what the server charged. */
  settled: bigint
  /** Returned to the payer: the rest of the deposit. */
  refunded: bigint
  /** The close transaction. */
  txHash: Hash
}

export type SessionProvider = PaymentProvider & {
  challengeFor(request: PaidRequest): Challenge.Challenge | undefined
  /**
   * Cooperatively closes every channel this provider has used: the server settles what it
   * charged and the rest of the deposit is refunded, in one transaction per channel. Call it
   * once the calls have ended; a call made meanwhile may open a new channel.
   */
  close(): Promise<ClosedChannel[]>
}

/** The channels of one origin for one payee, token, reserve and chain (mppx's channel key). */
type Scope = {
  /** `origin` and the channel key, for leases and logs; never a path. */
  id: string
  key: string
  store: MppxChannelStore
  /** The channel the server accepted, if any. */
  channel: Channel | undefined
  /** Settles when the open (or the search for a lost one) in flight is decided. */
  opening: Promise<void> | undefined
  /** An open that left this process with no answer, or was rejected: the chain decides. */
  lost: LostOpen | undefined
}

type Channel = {
  scope: Scope
  entry: ChannelEntry
  /** The highest cumulative amount handed out to a payment. */
  reserved: bigint
  /** The highest cumulative amount signed: a voucher that may have reached the server. */
  signed: bigint
  /** What the server last said it holds and has charged (its receipts). */
  accepted: bigint
  spent: bigint
  /** Where management requests (top-up, close) go: memory only. */
  endpoint: Endpoint
  /** Settles when the top-up in flight is decided. */
  toppingUp: Promise<void> | undefined
  /**
   * With a store shared between processes (one with a lease): the end of the block of cumulative
   * amounts this process has reserved in the store, which it alone signs within.
   */
  blockEnd: bigint | undefined
  /** Settles when the block being reserved is. */
  reserving: Promise<void> | undefined
}

type LostOpen = {
  entry: ChannelEntry
  endpoint: Endpoint
  /** Unix seconds after which the open transaction can no longer land. */
  validBefore: number
  /** Wait until `validBefore` before giving up: the server may still broadcast it. */
  final: boolean
}

type Endpoint = { url: string; headers: Headers }

/**
 * Pays TIP-1034 precompile session challenges (`sessionProtocol: "v2"`): opens one payment channel
 * per endpoint origin and payee, then pays each call with a signed cumulative voucher, at about a
 * millisecond of signing and no chain work per call.
 *
 * - The open is an expiring-nonce transaction prepared before anything is signed, so its quote
 *   shows the deposit and the most fee; the first voucher rides in it. Concurrent first calls
 *   wait for that one open, then pay with vouchers.
 * - Concurrent calls on an open channel each reserve the next cumulative amount at once, without
 *   waiting for each other; a voucher the network delivered late is paid again above the rest.
 * - When the deposit cannot cover the next voucher, the channel is topped up (within
 *   `maxDeposit`) with a management request, then the call pays its voucher. Past `maxDeposit`,
 *   calls are refused (`PaymentRefusedError`, reason `maxDeposit`) until `close()`.
 * - Management requests (top-up, close) are bodyless POSTs to the paid request's URL, with its
 *   headers, sent with the global `fetch`; the server answers them itself (204).
 * - After the first accepted payment on a URL, `challengeFor` lets each later call carry its
 *   voucher before the server asks: one HTTP request per call.
 * - A channel the server no longer knows (`410`) is dropped and a new one opened. An open whose
 *   answer was lost is looked up on chain before any other is opened.
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
}: SessionParameters): SessionProvider {
  if (isPaidClient(client))
    throw new Error('session(): `client` must not use a paid (mppHttp) transport.')
  const chainId = client.chain.id
  const source = Proof.proofSource({ address: account.address, chainId })

  const scopes = new Map<string, Scope>()
  /** Which scope (and channel) each challenge was paid with, for `recover`. */
  const paidWith = new WeakMap<Challenge.Challenge, { scope: Scope; channel?: Channel }>()
  /** The last accepted challenge per origin + pathname (memory only), for `challengeFor`. */
  const accepted = new Map<string, { challenge: Challenge.Challenge; scope: Scope }>()

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
        id,
        key,
        store: store.forOrigin?.(origin) ?? store,
        channel: undefined,
        opening: undefined,
        lost: undefined,
      }
      scopes.set(id, scope)
    }
    return scope
  }

  /**
   * Whether a stored channel is one this account can pay on: the key of an entry names neither
   * payer nor signer, and a store may be shared by several wallets.
   */
  const isOurs = (entry: ChannelEntry) =>
    entry.opened &&
    entry.chainId === chainId &&
    isAddressEqual(entry.descriptor.payer, account.address) &&
    isAddressEqual(entry.descriptor.authorizedSigner, signerOf(account))

  const credential = (challenge: Challenge.Challenge, payload: Record<string, unknown>) =>
    Credential.serialize({ challenge, payload, source })

  const quoteOf = (
    request: SessionRequest,
    cost: Pick<PaymentQuote, 'amount' | 'deposit' | 'fee' | 'feeToken'>,
  ): PaymentQuote => ({
    method: 'tempo',
    intent: 'session',
    ...cost,
    currency: request.currency,
    recipient: request.recipient,
    transfers: [{ recipient: request.recipient, amount: cost.amount }],
    chainId,
  })

  // A shared store keeps the reserved block's end, so that other processes sign above it.
  const persist = (channel: Channel) =>
    channel.scope.store.set({
      ...channel.entry,
      cumulativeAmount: bigintMax(channel.signed, channel.blockEnd ?? 0n),
    })

  const startChannel = (
    scope: Scope,
    entry: ChannelEntry,
    endpoint: Endpoint,
    deposit = entry.deposit,
  ): Channel => {
    const channel: Channel = {
      scope,
      entry: { ...entry, deposit, opened: true },
      reserved: entry.cumulativeAmount,
      signed: entry.cumulativeAmount,
      accepted: 0n,
      spent: 0n,
      endpoint,
      toppingUp: undefined,
      blockEnd: store.lease ? entry.cumulativeAmount : undefined,
      reserving: undefined,
    }
    scope.channel = channel
    return channel
  }

  /**
   * The server accepted a payment for `url` on `channel` (or its outcome is unknown: `receipt`
   * undefined). Its challenge is kept for `challengeFor`.
   */
  const accept = async (
    channel: Channel,
    receipt: Receipt.Receipt | undefined,
    challenge: Challenge.Challenge,
    url: string,
  ) => {
    const fields = receipt && sessionFieldsOf(receipt)
    if (fields) {
      if (fields.acceptedCumulative > channel.accepted) channel.accepted = fields.acceptedCumulative
      if (fields.spent > channel.spent) channel.spent = fields.spent
      // Another process may have signed higher: the next voucher goes above it.
      if (channel.accepted > channel.reserved) channel.reserved = channel.accepted
      if (channel.scope.channel === channel) {
        const { origin, pathname } = new URL(url)
        accepted.set(origin + pathname, { challenge, scope: channel.scope })
      }
    }
    // A shared store already holds the block's end, above every voucher signed within it.
    if (channel.blockEnd === undefined) await persist(channel)
  }

  /**
   * Reserves the next block of cumulative amounts under the store's lease: above everything any
   * process has reserved (the store's entry), written back before any of it is signed.
   */
  const reserveBlock = async (channel: Channel, price: bigint, signal: AbortSignal) => {
    const { scope } = channel
    const release = await leaseOf(store, scope.id, signal)
    try {
      const stored = await scope.store.get(scope.key)
      const shared = stored?.channelId === channel.entry.channelId
      if (shared && stored.cumulativeAmount > channel.reserved)
        channel.reserved = stored.cumulativeAmount
      channel.blockEnd = channel.reserved + price * blockCalls
      // Retired or replaced by another process: nothing to share (its vouchers will say so).
      if (shared) await persist(channel)
    } finally {
      release()
    }
  }

  /**
   * Reads the channel's deposit from the chain: after a top-up whose outcome is unknown, or when
   * the server says a voucher exceeds it (a stored entry can be wrong).
   */
  const refreshDeposit = async (channel: Channel) => {
    const { deposit } = await Chain.getChannelState(
      client,
      channel.entry.channelId,
      channel.entry.escrow,
    )
    if (deposit > 0n) channel.entry = { ...channel.entry, deposit }
  }

  /** Sends a management request (top-up, close): the request's URL, without a body. */
  const manage = (
    endpoint: Endpoint,
    paying: { challenge: Challenge.Challenge; authorization: string } | undefined,
    signal?: AbortSignal,
  ) => {
    const headers = new Headers(endpoint.headers)
    headers.delete('content-type')
    headers.delete('content-length')
    if (paying) headers.set(Challenge.credentialHeader(paying.challenge), paying.authorization)
    return fetch(endpoint.url, { method: 'POST', headers, signal: signal ?? null })
  }

  const voucherPayment = (
    channel: Channel,
    request: SessionRequest,
    challenge: Challenge.Challenge,
    url: string,
  ): PreparedPayment => {
    const next = channel.reserved + request.amount
    channel.reserved = next
    let signed = false
    return {
      quote: quoteOf(request, { amount: request.amount, deposit: 0n, fee: 0n }),
      async authorize() {
        const signature = await signVoucher(client, account, channel.entry, next)
        signed = true
        if (next > channel.signed) channel.signed = next
        return credential(challenge, {
          action: 'voucher',
          channelId: channel.entry.channelId,
          descriptor: channel.entry.descriptor,
          cumulativeAmount: next.toString(),
          signature,
        })
      },
      commit: (receipt) => accept(channel, receipt, challenge, url),
      async rollback() {
        // Only a slot never signed is given back, and only if none was handed out after it: a
        // voucher that left the process may be on the server, which takes only higher ones.
        if (!signed && channel.reserved === next) channel.reserved = next - request.amount
      },
    }
  }

  /** The top-up that lets the channel pay `required`, within `maxDeposit`. */
  const topUpAmount = (channel: Channel, request: SessionRequest, required: bigint) => {
    const { deposit } = channel.entry
    if (maxDeposit !== undefined && required > maxDeposit)
      throw new PaymentRefusedError({
        reason: 'maxDeposit',
        amount: request.amount,
        currency: request.currency,
        limit: maxDeposit,
      })
    return Session.Client.Machine.resolveAutomaticTopUp({
      deposit,
      maxDeposit,
      requiredCumulative: required,
      suggestedDeposit: preferredDeposit ?? request.suggestedDeposit,
    })
  }

  const topUpPayment = async (
    channel: Channel,
    request: SessionRequest,
    challenge: Challenge.Challenge,
    url: string,
    signal: AbortSignal,
  ): Promise<PreparedPayment> => {
    const next = channel.reserved + request.amount
    const additional = topUpAmount(channel, request, next)
    let done!: () => void
    const toppingUp = new Promise<void>((resolve) => {
      done = resolve
    })
    channel.toppingUp = toppingUp
    const finish = () => {
      if (channel.toppingUp === toppingUp) channel.toppingUp = undefined
      done()
    }
    channel.reserved = next
    const unreserve = () => {
      if (channel.reserved === next) channel.reserved = next - request.amount
    }
    const prepare = () =>
      prepareChannelTransaction(client, {
        account,
        request,
        data: topUpCall(channel.entry.descriptor, additional),
        validAfter: randomValidAfter(),
      })
    let prepared: Awaited<ReturnType<typeof prepareChannelTransaction>>
    try {
      prepared = await raceSignal(prepare(), signal)
      await assertAffordable(client, {
        account,
        token: request.currency,
        deposit: additional,
        amount: request.amount,
        fee: prepared.fee,
        feeToken: prepared.feeToken,
      })
    } catch (error) {
      unreserve()
      finish()
      throw error
    }
    const { fee, feeToken } = prepared
    let signed = false
    return {
      quote: quoteOf(request, { amount: request.amount, deposit: additional, fee, feeToken }),
      async authorize() {
        let sent = false
        try {
          prepared = await stillValid(prepared, prepare)
          const transaction = await signTransaction(client, prepared.transaction as never)
          sent = true
          const authorization = credential(challenge, {
            action: 'topUp',
            type: 'transaction',
            channelId: channel.entry.channelId,
            transaction,
            descriptor: channel.entry.descriptor,
            additionalDeposit: additional.toString(),
          })
          const answer = await manage(channel.endpoint, { challenge, authorization }, signal)
          await answer.body?.cancel()
          if (!answer.ok) throw new Error(`The server answered ${answer.status} to the top-up.`)
          channel.entry = { ...channel.entry, deposit: channel.entry.deposit + additional }
          await persist(channel)
        } catch (error) {
          // The top-up may have landed all the same; the chain knows.
          if (sent) await refreshDeposit(channel).catch(() => {})
          throw error
        } finally {
          finish()
        }
        const signature = await signVoucher(client, account, channel.entry, next)
        signed = true
        if (next > channel.signed) channel.signed = next
        return credential(challenge, {
          action: 'voucher',
          channelId: channel.entry.channelId,
          descriptor: channel.entry.descriptor,
          cumulativeAmount: next.toString(),
          signature,
        })
      },
      commit: (receipt) => accept(channel, receipt, challenge, url),
      async rollback() {
        if (!signed) unreserve()
        finish()
      },
    }
  }

  /** The deposit of a new channel: the preferred one, else the server's, capped by `maxDeposit`. */
  const openingDeposit = (request: SessionRequest) => {
    if (maxDeposit !== undefined && request.amount > maxDeposit)
      throw new PaymentRefusedError({
        reason: 'maxDeposit',
        amount: request.amount,
        currency: request.currency,
        limit: maxDeposit,
      })
    const wanted = preferredDeposit ?? request.suggestedDeposit ?? request.amount
    // At least one call's price; a greedy suggestion is capped, not obeyed.
    const floor = bigintMax(wanted, request.amount)
    return maxDeposit !== undefined && floor > maxDeposit ? maxDeposit : floor
  }

  const openPayment = async (
    scope: Scope,
    request: SessionRequest,
    challenge: Challenge.Challenge,
    endpoint: Endpoint,
    finish: () => void,
    signal: AbortSignal,
  ): Promise<PreparedPayment> => {
    const deposit = openingDeposit(request)
    const { data, descriptor } = openCall(account, request, deposit)
    let prepared = await raceSignal(
      prepareChannelTransaction(client, { account, request, data }),
      signal,
    )
    const { fee, feeToken } = prepared
    await assertAffordable(client, {
      account,
      token: request.currency,
      deposit,
      amount: request.amount,
      fee,
      feeToken,
    })
    let sent: ChannelEntry | undefined
    const lose = (final: boolean) => {
      const validBefore = prepared.transaction.validBefore ?? nowInSeconds()
      if (sent) scope.lost = { entry: sent, endpoint, validBefore, final }
    }
    return {
      // The first voucher rides in the open: the open pays its own call.
      quote: quoteOf(request, { amount: request.amount, deposit, fee, feeToken }),
      async authorize() {
        prepared = await stillValid(prepared, () =>
          prepareChannelTransaction(client, { account, request, data }),
        )
        const opened = await signOpen(client, { account, request, prepared, descriptor })
        const entry: ChannelEntry = {
          channelId: opened.channelId,
          cumulativeAmount: request.amount,
          deposit,
          descriptor: opened.descriptor,
          escrow: request.escrow,
          chainId,
          opened: true,
        }
        const signature = await signVoucher(client, account, entry, request.amount)
        sent = entry
        return credential(challenge, {
          action: 'open',
          type: 'transaction',
          channelId: entry.channelId,
          transaction: opened.transaction,
          descriptor: entry.descriptor,
          cumulativeAmount: request.amount.toString(),
          signature,
          authorizedSigner: entry.descriptor.authorizedSigner,
        })
      },
      async commit(receipt) {
        try {
          if (!sent) return
          if (!receipt) {
            // No answer: the server may have broadcast it. It is looked up before another.
            lose(true)
            return
          }
          const channel = startChannel(scope, sent, endpoint)
          paidWith.set(challenge, { scope, channel })
          await accept(channel, receipt, challenge, endpoint.url)
          // A new channel is written to a shared store too, for other processes to take up.
          if (channel.blockEnd !== undefined) await persist(channel)
        } finally {
          finish()
        }
      },
      async rollback() {
        // A rejected open may still have been broadcast (a server answers after it has).
        lose(false)
        finish()
      },
    }
  }

  /**
   * Whether the open that `scope` lost landed on chain: if so, its channel is taken up. An open
   * with no answer is waited for until its transaction expires.
   */
  const findLostOpen = async (scope: Scope, signal: AbortSignal) => {
    const lost = scope.lost
    if (!lost) return
    for (;;) {
      const { deposit } = await raceSignal(
        Chain.getChannelState(client, lost.entry.channelId, lost.entry.escrow),
        signal,
      )
      if (deposit > 0n) {
        scope.lost = undefined
        await persist(startChannel(scope, lost.entry, lost.endpoint, deposit))
        return
      }
      if (!lost.final || nowInSeconds() > lost.validBefore) {
        scope.lost = undefined
        return
      }
      await raceSignal(delay(lostOpenPoll), signal)
    }
  }

  /**
   * Decides, one caller at a time per scope (and under the store's lease across processes),
   * whether a channel exists: one whose open was lost, one in the store, or none, in which case
   * this caller opens it and holds the others until the server has answered.
   */
  const settleScope = async (
    scope: Scope,
    request: SessionRequest,
    challenge: Challenge.Challenge,
    endpoint: Endpoint,
    signal: AbortSignal,
  ): Promise<PreparedPayment | undefined> => {
    let done!: () => void
    const opening = new Promise<void>((resolve) => {
      done = resolve
    })
    scope.opening = opening
    let release = () => {}
    const finish = () => {
      if (scope.opening === opening) scope.opening = undefined
      release()
      done()
    }
    try {
      release = await leaseOf(store, scope.id, signal)
      await findLostOpen(scope, signal)
      if (!scope.channel) {
        const stored = await scope.store.get(scope.key)
        if (stored && isOurs(stored)) startChannel(scope, stored, endpoint)
      }
      if (scope.channel) {
        finish()
        return undefined
      }
      paidWith.set(challenge, { scope })
      return await openPayment(scope, request, challenge, endpoint, finish, signal)
    } catch (error) {
      finish()
      throw error
    }
  }

  const cachedChallenge = (scope: Scope) => {
    for (const cached of accepted.values())
      if (cached.scope === scope && unexpired(cached.challenge)) return cached.challenge
    return undefined
  }

  /** A fresh session challenge for the channel's scope, asked of its endpoint. */
  const probe = async (channel: Channel) => {
    const answer = await manage(channel.endpoint, undefined)
    await answer.body?.cancel()
    const challenge = decodeChallenges(answer).find((challenge) => {
      const { request } = parseSessionRequest(challenge, chainId)
      return !!request && scopeOf(new URL(channel.endpoint.url).origin, request) === channel.scope
    })
    if (!challenge) throw new Error(`The server offered no session challenge to close with.`)
    return challenge
  }

  const closeChannel = async (channel: Channel): Promise<ClosedChannel> => {
    const { entry, scope } = channel
    const challenge = cachedChallenge(scope) ?? (await probe(channel))
    // The close voucher must cover what the server charged; it captures only that.
    const amount = bigintMax(channel.signed, channel.spent)
    const signature = await signVoucher(client, account, entry, amount)
    const authorization = credential(challenge, {
      action: 'close',
      channelId: entry.channelId,
      descriptor: entry.descriptor,
      cumulativeAmount: amount.toString(),
      signature,
    })
    const answer = await manage(channel.endpoint, { challenge, authorization })
    await answer.body?.cancel()
    const header = answer.headers.get('payment-receipt')
    if (!answer.ok || !header)
      throw new Error(`The server answered ${answer.status} to the channel close.`)
    const txHash = Protocol.deserializeSessionReceipt(header).txHash as Hash | undefined
    if (!txHash) throw new Error('The server closed the channel without a transaction.')
    const receipt = await waitForTransactionReceipt(client, { hash: txHash })
    const { settledToPayee, refundedToPayer } = Chain.readChannelClosedReceiptFields(
      Chain.getChannelEvent(receipt, 'ChannelClosed', entry.channelId),
    )
    const stored = await scope.store.get(scope.key)
    if (stored?.channelId === entry.channelId) await scope.store.delete(scope.key)
    return {
      channelId: entry.channelId,
      settled: settledToPayee,
      refunded: refundedToPayer,
      txHash,
    }
  }

  const reasonOf = (challenge: Challenge.Challenge) =>
    parseSessionRequest(challenge, chainId).reason

  return {
    acceptPayment: 'tempo/session',
    supports: (challenge) => reasonOf(challenge) === undefined,
    unsupportedReason: reasonOf,
    async prepare({ challenge, request: paid, signal }) {
      const { request, reason } = parseSessionRequest(challenge, chainId)
      if (!request) throw new Error(`Not a payable session challenge: ${reason}.`)
      const scope = scopeOf(new URL(paid.url).origin, request)
      const endpoint = { url: paid.url, headers: paid.headers }
      for (;;) {
        if (scope.opening) {
          await raceSignal(scope.opening, signal)
          continue
        }
        const { channel } = scope
        if (!channel) {
          const payment = await settleScope(scope, request, challenge, endpoint, signal)
          if (payment) return payment
          continue
        }
        const waiting = channel.toppingUp ?? channel.reserving
        if (waiting) {
          await raceSignal(waiting, signal)
          continue
        }
        if (
          channel.blockEnd !== undefined &&
          channel.reserved + request.amount > channel.blockEnd
        ) {
          const reserving = reserveBlock(channel, request.amount, signal).finally(() => {
            if (channel.reserving === reserving) channel.reserving = undefined
          })
          channel.reserving = reserving
          continue
        }
        channel.endpoint = endpoint
        paidWith.set(challenge, { scope, channel })
        if (channel.reserved + request.amount > channel.entry.deposit)
          return topUpPayment(channel, request, challenge, paid.url, signal)
        return voucherPayment(channel, request, challenge, paid.url)
      }
    },
    async recover({ reason, challenge }) {
      const paid = paidWith.get(challenge)
      if (!paid) return false
      const { scope, channel } = paid
      if (reason === 'channelGone') {
        // An open still in flight is never dropped: the server may not have processed it yet.
        if (channel && scope.channel === channel) {
          scope.channel = undefined
          for (const [key, cached] of accepted) if (cached.scope === scope) accepted.delete(key)
          const stored = await scope.store.get(scope.key)
          if (stored?.channelId === channel.entry.channelId) await scope.store.delete(scope.key)
        }
        return true
      }
      // The channel was replaced meanwhile: a fresh challenge is paid on the new one.
      if (!channel || scope.channel !== channel) return reason !== 'keyNotProvisioned'
      if (reason === 'staleVoucher' || reason === 'insufficientBalance') {
        // A reordered request, or another process, got a higher voucher to the server: the next
        // one goes above every voucher known here and in the store.
        const stored = await scope.store.get(scope.key)
        const highest =
          stored?.channelId === channel.entry.channelId && stored.cumulativeAmount > channel.signed
            ? stored.cumulativeAmount
            : channel.signed
        if (highest > channel.reserved) channel.reserved = highest
        // In a shared store, the next voucher comes from a fresh block above every process's.
        if (channel.blockEnd !== undefined) channel.blockEnd = channel.reserved
        return true
      }
      if (reason === 'depositExceeded') {
        await refreshDeposit(channel)
        return true
      }
      return false
    },
    challengeFor(request) {
      const url = new URL(request.url)
      const cached = accepted.get(url.origin + url.pathname)
      if (!cached) return undefined
      if (!unexpired(cached.challenge)) {
        accepted.delete(url.origin + url.pathname)
        return undefined
      }
      const { scope } = cached
      if (!scope.channel || scope.opening) return undefined
      // A copy per request, so that `recover` tells its payment from the others'.
      return { ...cached.challenge }
    },
    async close() {
      const closed: ClosedChannel[] = []
      for (const scope of scopes.values()) {
        if (scope.opening) await scope.opening
        const channel = scope.channel
        if (!channel) continue
        if (channel.toppingUp) await channel.toppingUp
        closed.push(await closeChannel(channel))
        if (scope.channel === channel) scope.channel = undefined
        for (const [key, cached] of accepted) if (cached.scope === scope) accepted.delete(key)
      }
      return closed
    },
  }
}

/** The session fields of an accepted payment's receipt, if it has them. */
function sessionFieldsOf(receipt: Receipt.Receipt) {
  const { acceptedCumulative, spent } = receipt as { acceptedCumulative?: unknown; spent?: unknown }
  const amount = (value: unknown) =>
    typeof value === 'string' && /^\d{1,29}$/.test(value) ? BigInt(value) : undefined
  const acceptedAmount = amount(acceptedCumulative)
  const spentAmount = amount(spent)
  if (acceptedAmount === undefined || spentAmount === undefined) return undefined
  return { acceptedCumulative: acceptedAmount, spent: spentAmount }
}

/**
 * Holds the store's cross-process lease on `scope` until the returned function is called; a
 * no-op for stores without one.
 */
async function leaseOf(store: ChannelStore, scope: string, signal: AbortSignal) {
  if (!store.lease) return () => {}
  let release!: () => void
  const held = new Promise<void>((resolve) => {
    release = resolve
  })
  await new Promise<void>((entered, failed) => {
    store
      .lease?.(
        scope,
        async () => {
          entered()
          await held
        },
        { signal },
      )
      .catch(failed)
  })
  return release
}

function unexpired(challenge: Challenge.Challenge) {
  return (
    challenge.expires === undefined || Date.parse(challenge.expires) - challengeMargin > Date.now()
  )
}

const bigintMax = (a: bigint, b: bigint) => (a > b ? a : b)

const nowInSeconds = () => Math.floor(Date.now() / 1000)

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
