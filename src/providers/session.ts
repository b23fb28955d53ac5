import { Challenge, Credential, type Receipt } from 'mppx'
import { entryKey, type ChannelStore as MppxChannelStore } from 'mppx/client'
import { Proof, Session } from 'mppx/tempo'
import { type Account, type Hash, type Hex, isAddressEqual, maxUint96 } from 'viem'
import { signTransaction, waitForTransactionReceipt } from 'viem/actions'
import { PaymentRefusedError, RecoveredChannelError } from '../errors.js'
import { isPaidClient } from '../internal/paidTransportMarker.js'
import { redactErrorInPlace } from '../internal/redactUrl.js'
import { withinOrigin } from '../internal/sendWithinOrigin.js'
import { raceSignal } from '../internal/signal.js'
import { decodeChallenges } from '../internal/wwwAuthenticate.js'
import { classifyRejection, readProblem } from '../Problem.js'
import type { ChannelEntry, ChannelStore } from '../stores/ChannelStore.js'
import { memoryChannelStore } from '../stores/memory.js'
import { accessKeyOf, type KeychainEntry, payerOf, prepareInTurn } from './accessKey.js'
import { assertAffordable } from './funds.js'
import type {
  PaidRequest,
  PaymentProvider,
  PaymentQuote,
  PreparedPayment,
} from './PaymentProvider.js'
import { parseSessionRequest, type SessionRequest } from './session/request.js'
import {
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
/**
 * How many calls' worth of vouchers may be signed above the highest one the server accepted:
 * room for that many calls in flight. A server that rejects concurrent vouchers (each of which
 * it keeps) then holds at most this much more than it accepted, however many calls are made.
 */
const maxUnaccepted = 100n

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
   * Cooperatively closes every channel this provider has used (those it replaced after a `410`
   * too): the server settles what it charged and the rest of the deposit is refunded, in one
   * transaction per channel. Calls already paying on a channel end first; a call made meanwhile
   * waits for the close, then opens a new channel. Every channel is tried; if any cannot be
   * closed, it throws once the others are, naming those still open on chain.
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
  /**
   * Channels set aside, kept for `close()`: ones the server answered 410 for while they were
   * still funded and open on chain, and ones spent up to `maxDeposit`.
   */
  retired: Channel[]
  /**
   * Whether a channel was retired for a 410: while it is kept, another 410 is not answered with
   * yet another channel (each would lock another deposit).
   */
  replacedForGone: boolean
}

type Channel = {
  scope: Scope
  entry: ChannelEntry
  /** The highest cumulative amount handed out to a payment. */
  reserved: bigint
  /** The highest cumulative amount signed: a voucher that may have reached the server. */
  signed: bigint
  /**
   * What the server's receipts say it has charged. Only a guide for the close voucher: a server
   * cannot raise what this process signs by claiming more.
   */
  spent: bigint
  /** Payments handed out on the channel whose outcome is not known yet. */
  pending: number
  /** Called when one of the `pending` payments settles. */
  waiters: (() => void)[]
  /**
   * The highest cumulative amount the server accepted from this provider (or that another
   * process wrote to the store): see {@link maxUnaccepted}.
   */
  confirmed: bigint
  /** Settles when the close in flight is decided: calls wait for it, then open a new channel. */
  closing: Promise<unknown> | undefined
  /** Whether the server has accepted a payment of this provider on the channel. */
  synced: boolean
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
  /**
   * The highest cumulative amount this provider wrote to the store: a stored amount above it
   * was written by another process (or provider), whose vouchers the next one must go above.
   */
  written: bigint
}

type LostOpen = {
  entry: ChannelEntry
  endpoint: Endpoint
  /** Unix seconds after which the open transaction can no longer land. */
  validBefore: number
  /** Wait until `validBefore` before giving up: the server may still broadcast it. */
  final: boolean
}

/** Where management requests (top-up, close) go, and how: as the paid request went. */
type Endpoint = {
  url: string
  headers: Headers
  fetch: (url: string, init: RequestInit) => Promise<Response>
}

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
 *   `maxDeposit`) with a management request, then the call pays its voucher. A channel spent up
 *   to `maxDeposit` is set aside (kept for `close()`) and a new one opened: `maxDeposit` bounds
 *   what one channel locks; `maxAmount` and `budget` bound what is spent. A price above
 *   `maxDeposit` is refused (`PaymentRefusedError`, reason `maxDeposit`).
 * - Management requests (top-up, close) are bodyless POSTs to the paid request's URL, with its
 *   headers, sent with the global `fetch`; the server answers them itself (204).
 * - After the first accepted payment on a URL, `challengeFor` lets each later call carry its
 *   voucher before the server asks: one HTTP request per call.
 * - A channel the server no longer knows (`410`) is dropped and a new one opened. If the chain
 *   says it is still funded, it is kept for `close()`, and while it is, a second such `410` is
 *   not answered with a third channel. An open whose answer was lost is looked up on chain
 *   before any other is opened.
 * - A channel `syncChannels` recovered is taken up by the first endpoint it fits, quoted as one
 *   voucher: only once the spending policy approves it are the vouchers signed that find the
 *   server's highest one, then the call's above it. If that search gives up, the call fails
 *   (`RecoveredChannelError`) and the next one opens a new channel.
 * - What the server claims never raises what is signed: a receipt's `acceptedCumulative` or
 *   `spent` above the vouchers signed moves neither the next voucher nor the close, and a
 *   voucher the server rejects is signed again at the same amount, so a server that rejects
 *   every voucher holds one price more than it accepted, not one per attempt. At most 100
 *   calls' worth is ever signed above what the server accepted: calls beyond wait for those in
 *   flight, and fail (nothing signed) once none is left to wait for.
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
  // An access key's opens and top-ups carry its authorization only while the chain lacks the key.
  const key = accessKeyOf(account, chainId)
  // What a channel may hold: `maxDeposit`, and never more than a TIP-1034 (uint96) amount, so that
  // a server's suggestion of any size is capped rather than obeyed.
  const channelCap = bigintMin(maxDeposit ?? maxUint96, maxUint96)

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
        retired: [],
        replacedForGone: false,
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

  /** Signs the voucher for `cumulativeAmount` on `channel`: the credential of one payment. */
  const voucherCredential = async (
    channel: Channel,
    challenge: Challenge.Challenge,
    cumulativeAmount: bigint,
  ) => {
    const signature = await signVoucher(client, account, channel.entry, cumulativeAmount)
    if (cumulativeAmount > channel.signed) channel.signed = cumulativeAmount
    return credential(challenge, {
      action: 'voucher',
      channelId: channel.entry.channelId,
      descriptor: channel.entry.descriptor,
      cumulativeAmount: cumulativeAmount.toString(),
      signature,
    })
  }

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
  const persist = (channel: Channel) => {
    const cumulativeAmount = bigintMax(channel.signed, channel.blockEnd ?? 0n)
    channel.written = bigintMax(channel.written, cumulativeAmount)
    return channel.scope.store.set({ ...channel.entry, cumulativeAmount })
  }

  /** The stored amount of `channel` if another process (or provider) wrote it, else 0. */
  const writtenByOthers = (channel: Channel, stored: ChannelEntry | undefined) =>
    stored?.channelId === channel.entry.channelId && stored.cumulativeAmount > channel.written
      ? stored.cumulativeAmount
      : 0n

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
      spent: 0n,
      pending: 0,
      waiters: [],
      confirmed: entry.cumulativeAmount,
      closing: undefined,
      synced: false,
      endpoint,
      toppingUp: undefined,
      blockEnd: store.lease ? entry.cumulativeAmount : undefined,
      reserving: undefined,
      written: 0n,
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
    cumulativeAmount: bigint,
  ) => {
    if (receipt) {
      channel.synced = true
      if (cumulativeAmount > channel.confirmed) channel.confirmed = cumulativeAmount
    }
    const fields = receipt && sessionFieldsOf(receipt)
    if (fields) {
      // A receipt never moves the next voucher: a server claiming it holds more than was signed
      // here would otherwise be handed a voucher for it. Other processes' vouchers are known
      // from the store.
      if (fields.spent > channel.spent) channel.spent = fields.spent
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
      // Above another process's block; this process's own earlier blocks are not skipped over,
      // or a server rejecting every voucher would move each next one a block higher.
      const others = writtenByOthers(channel, stored)
      if (others > channel.reserved) channel.reserved = others
      if (others > channel.confirmed) channel.confirmed = others
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
    return endpoint.fetch(endpoint.url, { method: 'POST', headers, signal: signal ?? null })
  }

  /** Settles when the next of the channel's pending payments does. */
  const settling = (channel: Channel) =>
    new Promise<void>((settled) => {
      channel.waiters.push(settled)
    })

  /**
   * Counts a payment on the channel until its outcome is known (the returned function, which
   * may be called more than once), so that `close()` signs its voucher above every one of them.
   */
  const track = (channel: Channel) => {
    channel.pending++
    let settled = false
    return () => {
      if (settled) return
      settled = true
      channel.pending--
      for (const waiter of channel.waiters.splice(0)) waiter()
    }
  }

  /**
   * Gives back the slot of cumulative amounts ending at `next` if none was handed out after it.
   * A voucher that was signed and rejected is given back too: the next payment signs that same
   * amount again, so a server that rejects every voucher (or lies that it holds a higher one)
   * never holds more than one price above what was accepted.
   */
  const giveBack = (channel: Channel, next: bigint, price: bigint) => {
    if (channel.reserved === next) channel.reserved = next - price
  }

  const voucherPayment = (
    channel: Channel,
    request: SessionRequest,
    challenge: Challenge.Challenge,
    url: string,
  ): PreparedPayment => {
    const next = channel.reserved + request.amount
    channel.reserved = next
    const settle = track(channel)
    return {
      quote: quoteOf(request, { amount: request.amount, deposit: 0n, fee: 0n }),
      async authorize() {
        return voucherCredential(channel, challenge, next)
      },
      async commit(receipt) {
        try {
          await accept(channel, receipt, challenge, url, next)
        } finally {
          settle()
        }
      },
      async rollback() {
        giveBack(channel, next, request.amount)
        settle()
      },
    }
  }

  /** The top-up that lets the channel pay `required`, within `maxDeposit`. */
  const topUpAmount = (channel: Channel, request: SessionRequest, required: bigint) => {
    const { deposit } = channel.entry
    return Session.Client.Machine.resolveAutomaticTopUp({
      deposit,
      maxDeposit: channelCap,
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
    const settle = track(channel)
    const unreserve = () => {
      giveBack(channel, next, request.amount)
      settle()
    }
    const data = topUpCall(channel.entry.descriptor, additional)
    const prepare = (payer: Account) =>
      prepareChannelTransaction(client, {
        account: payer,
        request,
        data,
        validAfter: randomValidAfter(),
      })
    const ready = await prepareAffordable(request, additional, data, prepare, signal).catch(
      (error: unknown) => {
        unreserve()
        finish()
        throw error
      },
    )
    let { prepared } = ready
    const { turn } = ready
    const { fee, feeToken } = prepared
    return {
      quote: quoteOf(request, { amount: request.amount, deposit: additional, fee, feeToken }),
      async authorize() {
        let sent = false
        try {
          prepared = await stillValid(prepared, () =>
            prepare(payerOf(account, turn?.keyAuthorization)),
          )
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
          await turn?.provisioned()
          channel.entry = { ...channel.entry, deposit: channel.entry.deposit + additional }
          await persist(channel)
        } catch (error) {
          // The top-up may have landed all the same; the chain knows.
          if (sent) {
            turn?.unknown()
            await refreshDeposit(channel).catch(() => {})
          }
          throw error
        } finally {
          turn?.end()
          finish()
        }
        return voucherCredential(channel, challenge, next)
      },
      async commit(receipt) {
        try {
          await accept(channel, receipt, challenge, url, next)
        } finally {
          settle()
        }
      },
      async rollback() {
        turn?.end()
        unreserve()
        finish()
      },
    }
  }

  /**
   * Prepares an open or a top-up (calling the reserve with `data`) in the access key's turn, then
   * checks, before anything is signed, that the payer can afford it: what it `spends`, the price
   * and its most fee, within the key's limits and scopes. On failure the turn is ended.
   */
  const prepareAffordable = async (
    request: SessionRequest,
    spends: bigint,
    data: Hex,
    prepare: (payer: Account) => ReturnType<typeof prepareChannelTransaction>,
    signal: AbortSignal,
  ) => {
    const calls = [{ to: request.escrow, data }]
    const affordable = (fee: bigint, feeToken: Hex | undefined, keychain?: KeychainEntry) =>
      assertAffordable(client, {
        account,
        token: request.currency,
        spends,
        amount: request.amount,
        fee,
        feeToken,
        calls,
        keychain,
      })
    const begun = await key?.begin(client, signal)
    let turn = begun?.turn
    try {
      const ready = await raceSignal(prepareInTurn(account, begun, prepare), signal).catch(
        async (error: unknown) => {
          // A deposit the balance cannot cover fails the estimate first, with an error that does
          // not say so: it is refused, typed, instead.
          await affordable(0n, undefined, begun?.keychain)
          throw error
        },
      )
      turn = ready.turn
      await affordable(ready.prepared.fee, ready.prepared.feeToken, ready.keychain)
      return ready
    } catch (error) {
      turn?.end()
      throw error
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
    return bigintMin(floor, channelCap)
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
    const prepare = (payer: Account) =>
      prepareChannelTransaction(client, { account: payer, request, data })
    const ready = await prepareAffordable(request, deposit, data, prepare, signal)
    let { prepared } = ready
    const { turn } = ready
    const { fee, feeToken } = prepared
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
          prepare(payerOf(account, turn?.keyAuthorization)),
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
          // An accepted open carrying the authorization provisioned the key; with no answer, the
          // chain is asked again next time.
          if (receipt) await turn?.provisioned()
          else turn?.unknown()
          if (!sent) return
          if (!receipt) {
            // No answer: the server may have broadcast it. It is looked up before another.
            lose(true)
            return
          }
          const channel = startChannel(scope, sent, endpoint)
          paidWith.set(challenge, { scope, channel })
          await accept(channel, receipt, challenge, endpoint.url, sent.cumulativeAmount)
          // A new channel is written to a shared store too, for other processes to take up.
          if (channel.blockEnd !== undefined) await persist(channel)
        } finally {
          turn?.end()
          finish()
        }
      },
      async rollback() {
        // A rejected open may still have been broadcast (a server answers after it has).
        lose(false)
        turn?.end()
        finish()
      },
    }
  }

  /**
   * A channel recovered from the chain (`syncChannels`) is kept in the store's own entries, since
   * logs name no origin: the first endpoint whose scope (payee, token, reserve, chain) it fits
   * takes it up, moving it to its origin's entries. Its vouchers restart from what is settled on
   * chain, below what the server holds, so the server's highest voucher has to be found with
   * signed vouchers: that is done once the spending policy has approved the call, in `authorize`.
   * Here only what needs no signature is checked (a channel of this payer and signer, open on
   * chain, not spent to its deposit); the payment holds the scope's opening, and the take-up of
   * the recovered channel, until it settles.
   */
  const recoveredPayment = async (
    scope: Scope,
    request: SessionRequest,
    challenge: Challenge.Challenge,
    endpoint: Endpoint,
    finish: () => void,
    signal: AbortSignal,
  ): Promise<PreparedPayment | undefined> => {
    if (scope.store === store || !(await store.get(scope.key))) return undefined
    const release = await takeUpTurn(scope.key, signal)
    try {
      const recovered = await store.get(scope.key)
      if (!recovered || !isOurs(recovered) || passedOver.has(recovered.channelId)) {
        release()
        return undefined
      }
      const { deposit, settled, closeRequestedAt } = await raceSignal(
        Chain.getChannelState(client, recovered.channelId, recovered.escrow),
        signal,
      )
      const from = bigintMax(recovered.cumulativeAmount, settled)
      if (deposit === 0n || closeRequestedAt !== 0 || from + request.amount > deposit) {
        release()
        return undefined
      }
      return takeUpPayment(
        scope,
        { ...recovered, cumulativeAmount: from, deposit },
        request,
        challenge,
        endpoint,
        () => {
          release()
          finish()
        },
        signal,
      )
    } catch (error) {
      release()
      throw error
    }
  }

  /**
   * One take-up of a recovered channel at a time, whatever the origin, in this process and (under
   * the store's lease on the store's own entry) across processes: two origins of one payee taking
   * it up at once would both sign on it and both adopt it. Held until the returned function is
   * called.
   */
  const takeUpTurn = async (key: string, signal: AbortSignal) => {
    const before = takingUp.get(key) ?? Promise.resolve()
    let done!: () => void
    const turn = before.then(() => new Promise<void>((resolve) => (done = resolve)))
    takingUp.set(key, turn)
    let left = false
    const leave = () => {
      if (left) return
      left = true
      before.then(() => done())
      if (takingUp.get(key) === turn) takingUp.delete(key)
    }
    try {
      await raceSignal(before, signal)
      const unlease = await leaseOf(store, `\n${key}`, signal)
      return () => {
        if (left) return
        unlease()
        leave()
      }
    } catch (error) {
      leave()
      throw error
    }
  }
  /** Recovered channels being taken up, by key: the take-up of each waits for the one before. */
  const takingUp = new Map<string, Promise<void>>()
  /**
   * Recovered channels whose catch-up gave up in this provider: left unclaimed (for
   * `closeChannel`/`withdrawChannel`), and not climbed again, so that the next call opens.
   */
  const passedOver = new Set<Hex>()

  /**
   * Pays the call on a recovered channel, approved at one price. `authorize` first finds the
   * server's highest voucher: vouchers one price apart from what is settled, sent as management
   * requests, until one is accepted (the server's own, or one price above it at most). It then
   * adopts the channel (moves it to the origin's entries) and signs the call's voucher one price
   * above. After `maxUnaccepted` stale answers (a server holding no more than that many prices),
   * a `410`, or the deposit reached, the channel is left unclaimed and the call fails
   * (`RecoveredChannelError`), its own voucher unsigned: the next call opens a new channel,
   * approved with its deposit. Re-signing the same amounts on a later take-up (another provider)
   * gives a server nothing more.
   */
  const takeUpPayment = (
    scope: Scope,
    recovered: ChannelEntry,
    request: SessionRequest,
    challenge: Challenge.Challenge,
    endpoint: Endpoint,
    finish: () => void,
    signal: AbortSignal,
  ): PreparedPayment => {
    const { channelId, deposit } = recovered
    const giveUp = (reason: RecoveredChannelError.Reason) => {
      if (reason !== 'full') passedOver.add(channelId)
      // Kept as it is, class included, for the caller to find it under the flow's error.
      return redactErrorInPlace(new RecoveredChannelError({ reason, channelId }))
    }
    /** The call's voucher, once the channel is adopted. */
    let paying: { channel: Channel; next: bigint; settle: () => void } | undefined

    /** The server's highest voucher on the channel, found one price at a time. */
    const catchUp = async () => {
      let cumulativeAmount = recovered.cumulativeAmount
      for (let step = 0n; ; step++) {
        const next = cumulativeAmount + request.amount
        if (next > deposit) throw giveUp('spent')
        if (step === maxUnaccepted) throw giveUp('tooFarBehind')
        const signature = await signVoucher(client, account, recovered, next)
        const authorization = credential(challenge, {
          action: 'voucher',
          channelId,
          descriptor: recovered.descriptor,
          cumulativeAmount: next.toString(),
          signature,
        })
        const answer = await manage(endpoint, { challenge, authorization }, signal)
        const problem = await readProblem(answer)
        const rejection = classifyRejection(answer.status, problem)
        if (rejection === 'channelGone') throw giveUp('channelGone')
        // Accepted, or refused for another reason than a stale voucher: the call's voucher goes
        // above it, and a rejection of that is recovered from as on any channel.
        if (answer.ok || answer.status !== 402 || rejection !== 'staleVoucher') {
          if (answer.ok) cumulativeAmount = next
          return cumulativeAmount
        }
        cumulativeAmount = next
      }
    }

    const authorize = async () => {
      const found = await catchUp()
      // Past the deadline, the call is rolled back: the channel is not adopted for it.
      signal.throwIfAborted()
      const channel = startChannel(scope, { ...recovered, cumulativeAmount: found }, endpoint)
      // In a shared store, the calls' block is reserved at once: the scope's lease is held.
      if (channel.blockEnd !== undefined) channel.blockEnd = found + request.amount * blockCalls
      await persist(channel)
      await store.delete(scope.key)
      paidWith.set(challenge, { scope, channel })
      signal.throwIfAborted()
      const next = found + request.amount
      if (next > bigintMin(channel.entry.deposit, channelCap)) throw giveUp('full')
      channel.reserved = next
      paying = { channel, next, settle: track(channel) }
      return voucherCredential(channel, challenge, next)
    }
    let authorizing: Promise<string> | undefined
    return {
      quote: quoteOf(request, { amount: request.amount, deposit: 0n, fee: 0n }),
      authorize() {
        authorizing = authorize()
        return authorizing
      },
      async commit(receipt) {
        try {
          if (paying) await accept(paying.channel, receipt, challenge, endpoint.url, paying.next)
        } finally {
          paying?.settle()
          finish()
        }
      },
      async rollback() {
        // A flow that gave up waiting does not wait for the catch-up: the scope stays held until
        // it has ended, so that no other call takes the channel up meanwhile.
        await authorizing?.catch(() => {})
        if (paying) {
          giveBack(paying.channel, paying.next, request.amount)
          paying.settle()
        }
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
        if (stored) {
          if (isOurs(stored)) startChannel(scope, stored, endpoint)
        } else {
          const recovered = await recoveredPayment(
            scope,
            request,
            challenge,
            endpoint,
            finish,
            signal,
          )
          if (recovered) return recovered
        }
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

  /** Sets a spent channel aside (kept for close()), so that the next call opens a new one. */
  const retireSpent = async (scope: Scope, channel: Channel) => {
    if (scope.channel !== channel) return
    scope.channel = undefined
    scope.retired.push(channel)
    for (const [key, cached] of accepted) if (cached.scope === scope) accepted.delete(key)
    const stored = await scope.store.get(scope.key)
    if (stored?.channelId === channel.entry.channelId) await scope.store.delete(scope.key)
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
    // The close voucher must cover what the server charged, which it captures, but no more than
    // this process or another one sharing the store signed: a receipt may lie.
    const stored = await scope.store.get(scope.key)
    const shared = stored?.channelId === entry.channelId ? stored.cumulativeAmount : 0n
    const amount = bigintMax(channel.signed, bigintMin(channel.spent, shared))
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
      const endpoint = {
        url: paid.url,
        headers: paid.headers,
        fetch: paid.fetch ?? withinOrigin(globalThis.fetch),
      }
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
        const waiting = channel.toppingUp ?? channel.reserving ?? channel.closing
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
        if (
          channel.reserved + request.amount >
          channel.confirmed + request.amount * maxUnaccepted
        ) {
          if (channel.pending === 0)
            throw new Error(
              `The server accepted none of the last ${maxUnaccepted} vouchers on this channel: no more are signed on it (close() ends it).`,
            )
          await raceSignal(settling(channel), signal)
          continue
        }
        // A channel that could not hold the next voucher even topped up to `maxDeposit` is spent:
        // once its payments in flight have settled, it is set aside for close() and a new one is
        // opened, so that `maxDeposit` bounds what each channel locks, not what a key may spend.
        if (channel.reserved + request.amount > channelCap) {
          if (channel.pending > 0) await raceSignal(settling(channel), signal)
          else await retireSpent(scope, channel)
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
      // Only a key the chain really lacks is authorized again (never `KeyAlreadyExists`).
      if (reason === 'keyNotProvisioned') return key ? key.recover(client) : false
      if (reason === 'channelGone') {
        // An open still in flight is never dropped: the server may not have processed it yet.
        if (channel && scope.channel === channel) {
          // A server that says it does not know a channel still funded and open on chain lost its
          // records, or lies: the channel is kept for close(), and one new channel is opened in
          // its place, not one per request (each would lock another deposit).
          const { deposit, settled, closeRequestedAt } = await Chain.getChannelState(
            client,
            channel.entry.channelId,
            channel.entry.escrow,
          )
          if (deposit > settled && closeRequestedAt === 0) {
            if (scope.replacedForGone) return false
            scope.replacedForGone = true
            scope.retired.push(channel)
          }
          scope.channel = undefined
          for (const [key, cached] of accepted) if (cached.scope === scope) accepted.delete(key)
          const stored = await scope.store.get(scope.key)
          if (stored?.channelId === channel.entry.channelId) await scope.store.delete(scope.key)
        }
        return true
      }
      // The channel was replaced meanwhile: a fresh challenge is paid on the new one.
      if (!channel || scope.channel !== channel) return true
      if (reason === 'staleVoucher' || reason === 'insufficientBalance') {
        // A reordered request got a higher voucher to the server: the payments handed out since
        // are above it already. Another process (or provider) sharing the store may have too:
        // the next voucher goes above what it wrote there. Nothing else raises it: the rejected
        // voucher's own slot was given back, so a server that lies here gains nothing.
        let highest = writtenByOthers(channel, await scope.store.get(scope.key))
        if (highest > channel.confirmed) channel.confirmed = highest
        // A channel taken up from the store may be behind what the server saw: until the server
        // has accepted one of its vouchers, it catches up above its own (within maxUnaccepted).
        if (!channel.synced && channel.signed > highest) highest = channel.signed
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
      if (!scope.channel || scope.opening || scope.channel.closing) return undefined
      // A copy per request, so that `recover` tells its payment from the others'.
      return { ...cached.challenge }
    },
    async close() {
      const closed: ClosedChannel[] = []
      const failed: { channelId: Hex; error: unknown }[] = []
      for (const scope of scopes.values()) {
        if (scope.opening) await scope.opening
        for (const channel of [...scope.retired]) {
          try {
            closed.push(await closeChannel(channel))
            scope.retired.splice(scope.retired.indexOf(channel), 1)
          } catch (error) {
            failed.push({ channelId: channel.entry.channelId, error })
          }
        }
        const channel = scope.channel
        if (!channel) continue
        // Calls from now on wait, then open a new channel; those already paying on this one
        // end first, so that the close voucher is above every voucher they signed.
        const closing = (async () => {
          while (channel.pending > 0) await settling(channel)
          return closeChannel(channel)
        })()
        channel.closing = closing.then(
          () => {
            if (scope.channel === channel) scope.channel = undefined
            for (const [key, cached] of accepted) if (cached.scope === scope) accepted.delete(key)
          },
          () => {},
        )
        try {
          closed.push(await closing)
        } catch (error) {
          failed.push({ channelId: channel.entry.channelId, error })
        } finally {
          await channel.closing
          channel.closing = undefined
        }
      }
      const [first] = failed
      if (first)
        throw new Error(
          `${failed.length} channel(s) could not be closed and stay open on chain: ${failed
            .map(({ channelId }) => channelId)
            .join(', ')}. Closed: ${closed.length}.`,
          { cause: first.error },
        )
      return closed
    },
  }
}

/** What an accepted payment's receipt says the server charged, if it is a session receipt. */
function sessionFieldsOf(receipt: Receipt.Receipt) {
  const { acceptedCumulative, spent } = receipt as { acceptedCumulative?: unknown; spent?: unknown }
  const amount = (value: unknown) =>
    typeof value === 'string' && /^\d{1,29}$/.test(value) ? BigInt(value) : undefined
  const spentAmount = amount(spent)
  if (amount(acceptedCumulative) === undefined || spentAmount === undefined) return undefined
  return { spent: spentAmount }
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

const bigintMin = (a: bigint, b: bigint) => (a < b ? a : b)

const nowInSeconds = () => Math.floor(Date.now() / 1000)

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
