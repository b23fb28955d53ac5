import type { Challenge, Receipt } from 'mppx'
import type { Address, Hex } from 'viem'
import type { Problem, Rejection } from '../Problem.js'

/**
 * Who pays. The transport's payment flow owns HTTP and spending policy; a provider owns chain
 * work and payment state. For each 402 the flow:
 *
 * 1. drops expired, already-paid, other-chain and unsupported challenges, ranks the rest by
 *    {@link PaymentProvider.acceptPayment}, and asks {@link PaymentProvider.select} for one;
 * 2. calls {@link PaymentProvider.prepare}, which says what the payment would cost and signs
 *    nothing;
 * 3. checks that cost against `maxAmount`, `budget` and `onPaymentRequired`; on refusal it calls
 *    {@link PreparedPayment.rollback} and stops;
 * 4. calls {@link PreparedPayment.authorize} for the `Authorization` header and resends the request
 *    with it;
 * 5. calls {@link PreparedPayment.commit} when the server accepts it (or when the outcome is
 *    unknown), {@link PreparedPayment.rollback} when the server rejects it;
 * 6. after a rejection it can act on (`410 Gone`, an unprovisioned access key, a stale voucher),
 *    calls {@link PaymentProvider.recover}, and pays a fresh challenge if that returns `true`.
 *
 * A provider that can pay before the server asks (see {@link PaymentProvider.challengeFor}) is
 * asked before each request for a challenge it already holds, which goes through the same steps.
 *
 * @example
 * ```ts
 * import type { PaymentProvider } from 'viem-mpp'
 *
 * const provider: PaymentProvider = {
 *   supports: (challenge) => challenge.method === 'example' && challenge.intent === 'charge',
 *   async prepare({ challenge }) {
 *     const amount = BigInt(challenge.request.amount as string)
 *     return {
 *       quote: {
 *         method: 'example',
 *         intent: 'charge',
 *         amount,
 *         deposit: 0n,
 *         fee: 0n,
 *         currency: '0x…',
 *         recipient: '0x…',
 *         transfers: [{ recipient: '0x…', amount }],
 *       },
 *       authorize: async () => `Payment ${await myWallet.pay(challenge)}`,
 *       commit: async () => {},
 *       rollback: async () => {},
 *     }
 *   },
 * }
 * ```
 */
export type PaymentProvider = {
  /** Whether this provider can pay `challenge` (method, intent, chain, currency). */
  supports(challenge: Challenge.Challenge): boolean
  /**
   * Why it cannot pay a challenge that {@link PaymentProvider.supports} refused (e.g. `session
   * protocol v1, not v2`), as `PaymentRequiredError` lists it among the challenges passed over.
   * Default, or when it returns `undefined`: `not supported by the provider`.
   */
  unsupportedReason?(challenge: Challenge.Challenge): string | undefined
  /**
   * What it prefers to pay, as an `Accept-Payment` value (e.g. `tempo/session, tempo/charge;q=0.5`):
   * challenges are ranked by it, and those it gives `q=0` or does not name are passed over.
   * Default: every supported challenge, in the server's order.
   */
  acceptPayment?: string | undefined
  /**
   * Picks the challenge to pay among those it supports, ranked by `acceptPayment` (else in the
   * server's order of preference). Default: the first.
   */
  select?(challenges: readonly Challenge.Challenge[]): Challenge.Challenge | undefined
  /** Prepares a payment for `challenge`: works out its cost, signs nothing. */
  prepare(parameters: PrepareParameters): Promise<PreparedPayment>
  /**
   * Acts on a rejection (e.g. drops a channel the server no longer knows, or attaches a key
   * authorization next time). Returns whether paying a fresh challenge may now succeed.
   */
  recover?(parameters: RecoverParameters): Promise<boolean>
  /**
   * A challenge from an earlier 402 that this provider can pay again for `request` before it is
   * sent, so that a paid call takes one HTTP request instead of two (e.g. a session with an open
   * channel on this origin, and the server's unexpired session challenge for this URL). The flow
   * pays it exactly as a challenge from a 402 — filters, spending policy, two-phase commit — and a
   * 402 or 410 answer continues the usual flow. `undefined`: the request goes out unpaid.
   *
   * It is asked, synchronously, before each request once this provider has had a payment
   * accepted on the transport (never before: the unpaid path stays as fast as `http()`). Its
   * challenge is the request's first payment round: an expired one, one for another chain or
   * one it does not support leaves the request unpaid. A rejection is rolled back and handled
   * as for any paid request, except that a 402 with no reason the flow acts on is taken as the
   * server asking for a fresh challenge (a bearer payment is made again only if its challenge
   * had expired by the client's own clock). Three payments per request at most; the same
   * challenge is never paid twice for one request, though later requests may pay it again. If
   * it throws, the request goes out unpaid, as for `undefined`.
   *
   * @example
   * ```ts
   * // The last challenge the server accepted, per origin and path, kept while unexpired.
   * const accepted = new Map<string, Challenge.Challenge>()
   * const keyOf = (url: string) => {
   *   const { origin, pathname } = new URL(url)
   *   return origin + pathname
   * }
   * const provider: PaymentProvider = {
   *   // …supports, prepare (whose commit records `accepted.set(keyOf(request.url), challenge)`)
   *   challengeFor(request) {
   *     const challenge = accepted.get(keyOf(request.url))
   *     const expires = challenge?.expires ? Date.parse(challenge.expires) : Infinity
   *     return expires > Date.now() + 5_000 ? challenge : undefined
   *   },
   * }
   * ```
   */
  challengeFor?(request: PaidRequest): Challenge.Challenge | undefined
}

export type PrepareParameters = {
  /** The challenge to pay. */
  challenge: Challenge.Challenge
  /** The request the payment is for, as it will be resent. */
  request: PaidRequest
  /** Aborts when the payment flow times out or the caller gives up. */
  signal: AbortSignal
}

export type PaidRequest = {
  /** Full URL, including any secrets in it: never log it. */
  url: string
  method: string
  headers: Headers
  body: string | undefined
  /**
   * Sends a request of the provider's own to the endpoint (a session's top-up or close) as the
   * transport sends its requests: through its `fetchFn`, following redirects only within the
   * origin. Absent (a request built by hand), the global `fetch` is used the same way.
   */
  fetch?: ((url: string, init: RequestInit) => Promise<Response>) | undefined
}

/** A payment ready to be authorized, with its cost known. */
export type PreparedPayment = {
  /** What the payment costs, for the spending policy. */
  quote: PaymentQuote
  /** Signs the payment (and does any chain work it needs) and returns the `Authorization` value. */
  authorize(): Promise<string>
  /**
   * The server accepted the payment (`outcome.accepted`: a 2xx, with or without a receipt), or
   * its outcome is unknown: keep its effects. Like every hook, it is waited for until the flow's
   * deadline (`paymentTimeout` or the caller's abort) and no longer: it must not count on the
   * request waiting for it.
   */
  commit(receipt: Receipt.Receipt | undefined, outcome: CommitOutcome): Promise<void>
  /**
   * The payment was refused, failed before it was sent, or the server rejected it: undo it.
   * Waited for until the flow's deadline, as `commit` is; after a rejection, one that fails
   * or does not answer in time ends the request, which is then not paid again.
   */
  rollback(): Promise<void>
  /**
   * The fee the payment really cost, in base units of the quote's `feeToken`, read once it is
   * committed (e.g. from the chain's receipt of the transaction it signed); `undefined` if not
   * known (its transaction is not on chain, or the server sponsors the fee). The budget then
   * keeps that instead of the most fee quoted. Asked in the background, after `commit`, and only
   * when the transport has a `budget`: a call never waits for it, though a payment the budget
   * would refuse meanwhile does.
   */
  feePaid?(): Promise<bigint | undefined>
  /**
   * Whether the credential is a bearer payment that whoever holds it can settle until it expires
   * (a signed transfer). Its amount then stays counted against the budget even when the server
   * rejects it, since a lying server could still settle it.
   */
  bearer?: boolean | undefined
}

/** How a committed payment ended. */
export type CommitOutcome = {
  /**
   * The server answered 2xx: it accepted the payment (a receipt is evidence of it, not the only
   * one: a proxy may strip it). `false`: the outcome is not known (the connection failed after the
   * credential left, or the server failed with a 5xx), and the payment counts as made.
   */
  accepted: boolean
}

/** The cost of one payment, decoded from its challenge and prepared transaction. */
export type PaymentQuote = {
  /** Payment method, e.g. `tempo`. */
  method: string
  /** Payment intent, e.g. `charge` or `session`. */
  intent: string
  /**
   * Total the payment spends, in base units of `currency`: for a charge the challenge's
   * `amount` (all transfers, splits included); for a session the voucher's increment over what
   * the channel has already paid. Counts against `budget` and `maxAmount`.
   */
  amount: bigint
  /**
   * Funds the payment locks without spending them, in base units: a session's new deposit or
   * top-up. Zero for a charge. Counts against `maxAmount`.
   */
  deposit: bigint
  /**
   * The most the payment can cost in transaction fees, in base units of `feeToken` (a USD
   * TIP-20 token: fees and USD currencies share 6 decimals, so fees add to `amount` in the
   * budget). Zero when nothing is broadcast at the payer's expense, e.g. when the server sponsors
   * the fees (`methodDetails.feePayer: true`). Counts against `budget`.
   */
  fee: bigint
  /** The TIP-20 token the fee is paid in, when the payer pays one. */
  feeToken?: Address | undefined
  /** TIP-20 token address. */
  currency: Address
  /** The primary recipient. */
  recipient: Address
  /**
   * Every transfer the payment makes, splits included: who gets what. The amounts sum to
   * `amount`. Check every recipient here, not only `recipient`.
   */
  transfers: readonly PaymentTransfer[]
  /** Chain the payment is made on. */
  chainId?: number | undefined
}

/** One transfer of a payment. */
export type PaymentTransfer = {
  recipient: Address
  /** In base units of the quote's `currency`. */
  amount: bigint
  /** The `bytes32` memo the transfer carries, if any. */
  memo?: Hex | undefined
}

export type RecoverParameters = {
  /** What the server said, classified. */
  reason: Exclude<Rejection, 'rejected'>
  /** The challenge that was paid. */
  challenge: Challenge.Challenge
  /** The server's problem details, if any. */
  problem: Problem | undefined
}
