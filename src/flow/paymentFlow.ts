import { Challenge, Receipt } from 'mppx'
import { rankByAcceptPayment } from '../AcceptPayment.js'
import {
  isPaymentError,
  PaymentFailedError,
  PaymentRefusedError,
  PaymentRequiredError,
} from '../errors.js'
import { createDeadline, releaseAfterBody } from '../internal/deadline.js'
import { redactUrl } from '../internal/redactUrl.js'
import { sendWithinOrigin, withinOrigin } from '../internal/sendWithinOrigin.js'
import { raceSignal } from '../internal/signal.js'
import { decodeChallenges } from '../internal/wwwAuthenticate.js'
import { classifyRejection, type Problem, type Rejection, readProblem } from '../Problem.js'
import type {
  CommitOutcome,
  PaidRequest,
  PaymentProvider,
  PreparedPayment,
} from '../providers/PaymentProvider.js'
import { label, unpayableReason } from './challenges.js'
import type { PaymentEvent, Reservation, SpendingPolicy } from './policy.js'
import { checkQuote } from './quote.js'

/** Paid attempts per request at most: a first payment, and two after recoverable rejections. */
export const maxPaymentRounds = 3

export type PaymentHooks = {
  /** A 402 arrived; `challenges` are all the Payment challenges it decoded to. */
  onChallenge?:
    | ((event: { challenges: readonly Challenge.Challenge[]; origin: string }) => unknown)
    | undefined
  /** A credential is about to be sent. */
  onPaymentSent?: ((event: PaymentEvent) => unknown) | undefined
  /** The server rejected a payment (402 or 410). */
  onPaymentRejected?:
    | ((event: PaymentEvent & { status: number; problem: Problem | undefined }) => unknown)
    | undefined
  /** The server accepted a payment; `receipt` is its decoded `Payment-Receipt`, if it sent one. */
  onReceipt?:
    | ((event: PaymentEvent & { receipt: Receipt.Receipt | undefined }) => unknown)
    | undefined
}

export type PaymentFlowConfig = PaymentHooks & {
  /**
   * Who pays, looked up on each 402 with the challenges it offered (a default provider is found
   * only when one is first needed); `undefined` if nobody can.
   */
  getProvider: (challenges: readonly Challenge.Challenge[]) => Promise<PaymentProvider | undefined>
  /** Spending rules shared by every request of the transport. */
  policy: SpendingPolicy
  /** The fetch that sends requests. */
  fetchFn: (input: string, init: RequestInit) => Promise<Response>
  /** Chain of the client; challenges for other chains are passed over. */
  chainId: number | undefined
  /** How long a request's whole payment flow may take, in ms. */
  paymentTimeout: number
  /** Whether a credential may be sent to a URL (see `credentialPolicy`). */
  mayCarryCredentials: (url: URL) => boolean
}

/**
 * Creates the payment flow of a transport. `pay` takes a request that was answered 402, pays and
 * resends it until the server accepts it, and returns the server's answer. `presend` pays a
 * request before it is sent, with a challenge the provider already holds (see
 * {@link PaymentProvider.challengeFor}), or returns `undefined` to send it unpaid. Both throw
 * `PaymentRequiredError`, `PaymentRefusedError` or `PaymentFailedError`, and nothing else.
 *
 * `init.signal` must be the caller's own signal (not a request timeout): the flow has its own
 * deadline (`paymentTimeout`, 0 for none), which every step waits under — the provider, the
 * spending hook, the signer, the server and the answer's body — and a caller that gives up
 * before the credential is sent pays nothing.
 */
export function createPaymentFlow(config: PaymentFlowConfig) {
  const { getProvider, policy, fetchFn, chainId, paymentTimeout, mayCarryCredentials } = config
  // What providers send their own requests (a top-up, a close) with: made once, not per request.
  const providerFetch = withinOrigin(fetchFn)
  // The provider that has paid here and can pay before the server asks. Until one has, requests
  // go out as they are: the transport checks `presending` and nothing else.
  let presender: PaymentProvider | undefined

  async function pay(
    requestedUrl: string,
    init: RequestInit,
    response: Response,
  ): Promise<Response> {
    await response.body?.cancel()
    // The 402 may come from where a redirect led: pay only within the origin asked for.
    const url = response.redirected && response.url ? response.url : requestedUrl
    if (new URL(url).origin !== new URL(requestedUrl).origin)
      throw new PaymentRequiredError({ reason: 'redirected', origin: redactUrl(requestedUrl) })
    const origin = redactUrl(url)
    if (!mayCarryCredentials(new URL(url)))
      throw new PaymentRequiredError({ reason: 'insecureTransport', origin })
    return withinDeadline(init, async (signal) => {
      const provider = await providerFor(decodeChallenges(response), origin, signal)
      const request = paidRequest(url, init, providerFetch)
      return payUntil(signal, { url, origin, init, request, provider, first: { response } })
    })
  }

  function presend(url: string, init: RequestInit): Promise<Response> | undefined {
    const provider = presender
    if (!provider?.challengeFor || !mayCarryCredentials(new URL(url))) return undefined
    const request = paidRequest(url, init, providerFetch)
    let challenge: Challenge.Challenge | undefined
    try {
      challenge = provider.challengeFor(request)
    } catch {
      // Paying before the server asks only saves a request: without it, the 402 path pays.
      return undefined
    }
    // The same filters as for a 402's challenges; an unpayable one leaves the request unpaid.
    if (!challenge || !choose([challenge], provider, { chainId, paid: new Set() }).challenge)
      return undefined
    const origin = redactUrl(url)
    return withinDeadline(init, (signal) =>
      payUntil(signal, { url, origin, init, request, provider, first: { challenge } }),
    )
  }

  /** Runs `flow` under the request's deadline, which also bounds the arrival of the answer's body. */
  async function withinDeadline(
    init: RequestInit,
    flow: (signal: AbortSignal) => Promise<Response>,
  ): Promise<Response> {
    const deadline = createDeadline(paymentTimeout, init.signal)
    try {
      const answer = await flow(deadline.signal)
      return releaseAfterBody(answer, deadline.clear)
    } catch (error) {
      deadline.clear()
      throw error
    }
  }

  async function providerFor(
    challenges: readonly Challenge.Challenge[],
    origin: string,
    signal: AbortSignal,
  ): Promise<PaymentProvider> {
    const provider = await raceSignal(getProvider(challenges), signal).catch((error: unknown) => {
      if (signal.aborted)
        throw new PaymentFailedError({ shortMessage: unsent, settled: false, origin, cause: error })
      if (isPaymentError(error)) throw error
      throw new PaymentRequiredError({ reason: 'noProvider', origin, cause: error })
    })
    if (!provider) throw new PaymentRequiredError({ reason: 'noProvider', origin })
    return provider
  }

  async function payUntil(
    signal: AbortSignal,
    {
      url,
      origin,
      init,
      request,
      provider,
      first,
    }: {
      url: string
      origin: string
      init: RequestInit
      request: PaidRequest
      provider: PaymentProvider
      /** What the first round pays: a challenge of the 402 `response`, or a pre-sent `challenge`. */
      first: { response: Response } | { challenge: Challenge.Challenge }
    },
  ): Promise<Response> {
    // Once a rejected bearer payment may have been taken, every later failure says so.
    let taken = false
    const fail = (parameters: Omit<PaymentFailedError.Parameters, 'origin'>) =>
      new PaymentFailedError({ ...parameters, settled: parameters.settled || taken, origin })
    const send = (credential?: { header: string; value: string }) =>
      sendWithinOrigin(fetchFn, url, init, credential, signal)
    const paid = new Set<string>()
    let rejection: { status: number; problem: Problem | undefined } | undefined
    // Whether a bearer payment was made again on the benefit of clock skew (see assertMayPayAgain).
    let skewGranted = false
    // Whether a key was found unprovisioned for this request: its authorization is attached once.
    let keyRecovered = false
    let next = first

    /** The challenge of a 402 (or 410) to pay next, or why there is none. */
    const challengeOf = (response: Response) => {
      const challenges = decodeChallenges(response)
      notify(config.onChallenge, { challenges, origin })
      const choice = choose(challenges, provider, { chainId, paid })
      if (choice.challenge) return choice.challenge
      if (rejection)
        throw fail({
          shortMessage: 'The server rejected the payment and offered nothing new to pay.',
          ...rejection,
          settled: false,
        })
      throw new PaymentRequiredError({
        reason: challenges.length === 0 ? 'noChallenge' : 'noSupportedChallenge',
        origin,
        offered: choice.passedOver,
      })
    }

    /**
     * Throws (with `rejected`) unless a fresh challenge may be paid after the server rejected a
     * payment for `reason`: the flow pays again only for a reason it can act on, and a bearer
     * payment, which the server may still hold, only for one the client checks for itself.
     */
    const assertMayPayAgain = async (
      reason: Rejection,
      {
        challenge,
        presented,
        bearer,
        problem,
      }: {
        challenge: Challenge.Challenge
        /** Whether the challenge was pre-sent rather than taken from a 402. */
        presented: boolean
        bearer: boolean
        problem: Problem | undefined
      },
      rejected: (shortMessage: string, cause?: unknown) => PaymentFailedError,
    ) => {
      if (reason === 'challengeExpired' || reason === 'rejected') {
        // A pre-sent challenge was a guess that the server still takes it: a 402 it does not
        // explain asks for a fresh challenge, as it would have for the request sent unpaid.
        if (reason === 'rejected' && !presented) throw rejected('The server rejected the payment.')
        if (!bearer) return
        // A bearer payment is made again only if the client sees for itself that its challenge
        // expired: a server that lies about it is paid once. A server clock running ahead gets
        // the benefit of the doubt once per request, so that minting challenges about to
        // expire does not collect every round.
        const withinSkew = !expiredByOwnClock(challenge, 0)
        if (!expiredByOwnClock(challenge, clockSkew) || (withinSkew && skewGranted))
          throw rejected(
            reason === 'rejected'
              ? 'The server rejected the payment.'
              : 'The server said the challenge had expired, but it had not; the payment is not made again.',
          )
        skewGranted ||= withinSkew
        return
      }
      if (reason === 'keyNotProvisioned') {
        if (keyRecovered)
          throw rejected('The server said twice that the access key is not provisioned.')
        keyRecovered = true
      }
      // The provider acts on the reason; for a bearer payment, it checks it itself (e.g. on chain).
      const recovered = await raceSignal(
        settling(() => provider.recover?.({ reason, challenge, problem })),
        signal,
      ).catch((error: unknown) => {
        throw rejected('The server rejected the payment, and recovering failed.', error)
      })
      if (recovered !== true) throw rejected('The server rejected the payment.')
    }

    for (let round = 1; ; round++) {
      const presented = 'challenge' in next
      const challenge = 'challenge' in next ? next.challenge : challengeOf(next.response)
      paid.add(challenge.id)
      const payment = await startPayment(
        provider,
        policy,
        { challenge, request, signal },
        origin,
      ).catch((error: unknown) => {
        if (isPaymentError(error)) throw error
        throw fail({
          shortMessage: signal.aborted ? unsent : 'The payment could not be prepared.',
          settled: false,
          cause: error,
        })
      })
      const event: PaymentEvent = { challenge, quote: payment.quote, origin }

      let authorization: string
      try {
        // A signer that never answers must not hold the request: the deadline ends the wait,
        // and a credential signed after it is never sent.
        signal.throwIfAborted()
        authorization = await raceSignal(payment.authorize(), signal)
      } catch (error) {
        await payment.rollback()
        // Refused while signing (a fleet budget): nothing was signed.
        if (error instanceof PaymentRefusedError) throw error
        throw fail({
          shortMessage: signal.aborted ? unsent : 'The payment could not be made.',
          settled: false,
          cause: error,
        })
      }

      notify(config.onPaymentSent, event)
      let answer: Response
      try {
        // The challenge names the header for its credential; `Authorization` by default.
        answer = await send({ header: Challenge.credentialHeader(challenge), value: authorization })
      } catch (error) {
        // The credential may have reached the server: the payment counts as made.
        await payment.commit(undefined, { accepted: false })
        throw fail({
          shortMessage: 'The paid request failed after the payment was sent.',
          settled: true,
          cause: error,
        })
      }

      if (answer.ok) {
        const receipt = decodeReceipt(answer)
        await payment.commit(receipt, { accepted: true })
        // From now on, this provider is asked for a challenge before each request is sent.
        if (provider.challengeFor) presender = provider
        notify(config.onReceipt, { ...event, receipt })
        return answer
      }

      const problem = await readProblem(answer)
      if (answer.status !== 402 && answer.status !== 410) {
        // The server failed after receiving the credential: it may have taken the payment.
        await payment.commit(undefined, { accepted: false })
        throw fail({
          shortMessage: `The server answered ${answer.status} to the paid request.`,
          status: answer.status,
          problem,
          settled: true,
        })
      }

      const { settled, failure } = await payment.reject()
      taken ||= settled
      notify(config.onPaymentRejected, { ...event, status: answer.status, problem })
      rejection = { status: answer.status, problem }
      const rejected = (shortMessage: string, cause?: unknown) =>
        fail({ shortMessage, ...rejection, settled, cause })
      if (failure)
        throw rejected('The server rejected the payment, and undoing it failed.', failure)
      if (round === maxPaymentRounds)
        throw rejected(`The server rejected ${maxPaymentRounds} payments for one request.`)
      const reason = classifyRejection(answer.status, problem)
      await assertMayPayAgain(
        reason,
        { challenge, presented, bearer: payment.bearer, problem },
        rejected,
      )

      // A rejection normally carries a fresh challenge; otherwise ask for one.
      if (decodeChallenges(answer).length > 0) {
        next = { response: answer }
        continue
      }
      const response = await send().catch((error: unknown) => {
        throw rejected('Asking the server for a fresh challenge failed.', error)
      })
      // Unpaid now (e.g. free again): the answer is the request's.
      if (response.status !== 402) return response
      next = { response }
    }
  }

  return {
    pay,
    presend,
    /** Whether `presend` may pay anything: a provider that can pay before being asked has paid. */
    get presending() {
      return presender !== undefined
    },
  }
}

/** The request a payment is for, as the provider sees it. */
function paidRequest(url: string, init: RequestInit, fetch: PaidRequest['fetch']): PaidRequest {
  return {
    url,
    method: init.method ?? 'POST',
    headers: new Headers(init.headers),
    body: init.body as string | undefined,
    fetch,
  }
}

const unsent = 'The payment was not completed in time or the caller gave up; nothing was sent.'

/**
 * How far the server's clock may run ahead of this one: a challenge that expires within this
 * margin may really have expired for the server.
 */
const clockSkew = 5_000

/** Whether `challenge` has expired by this clock, or would have by one `skew` ms ahead. */
function expiredByOwnClock(challenge: Challenge.Challenge, skew: number) {
  if (challenge.expires === undefined) return false
  return Date.parse(challenge.expires) <= Date.now() + skew
}

/**
 * Whether a credential may be sent to `url`: over HTTPS, or over plain HTTP to this machine only.
 * The core spec forbids Payment credentials over unencrypted HTTP, where anyone on the path can
 * take them.
 */
/** The challenge to pay, or why none can be paid. Passed-over challenges say why. */
function choose(
  challenges: readonly Challenge.Challenge[],
  provider: PaymentProvider,
  { chainId, paid }: { chainId: number | undefined; paid: ReadonlySet<string> },
): { challenge?: Challenge.Challenge; passedOver: string[] } {
  const now = Date.now()
  const candidates: Challenge.Challenge[] = []
  const passedOver: string[] = []
  for (const challenge of challenges) {
    const reason =
      unpayableReason(challenge, { chainId, paid, now }) ??
      (provider.supports(challenge)
        ? undefined
        : (provider.unsupportedReason?.(challenge) ?? 'not supported by the provider'))
    if (reason) passedOver.push(`${label(challenge)}: ${reason}`)
    else candidates.push(challenge)
  }
  const ranked = rankByAcceptPayment(candidates, provider.acceptPayment)
  for (const challenge of candidates)
    if (!ranked.includes(challenge))
      passedOver.push(`${label(challenge)}: not in the provider's Accept-Payment`)
  const selected = provider.select ? provider.select(ranked) : ranked[0]
  // A provider's choice is only taken among what may be paid.
  return { challenge: selected && ranked.includes(selected) ? selected : undefined, passedOver }
}

/**
 * A prepared, approved payment: the provider's state and the budget's reservation move together,
 * two-phase, so that neither can be settled without the other.
 */
type Payment = {
  quote: PreparedPayment['quote']
  /** A credential that whoever holds it can settle (see {@link PreparedPayment.bearer}). */
  bearer: boolean
  authorize(): Promise<string>
  /** Accepted, or outcome unknown: keep the provider's effects, spend the amount. */
  commit(receipt: Receipt.Receipt | undefined, outcome: CommitOutcome): Promise<void>
  /** Never sent: undo the provider's effects, free the amount. */
  rollback(): Promise<void>
  /**
   * Sent and rejected by the server: undo the provider's effects. The amount stays spent if the
   * credential is a bearer payment the server could still settle (`settled`).
   */
  reject(): Promise<{ settled: boolean; failure: unknown }>
}

async function startPayment(
  provider: PaymentProvider,
  policy: SpendingPolicy,
  parameters: Parameters<PaymentProvider['prepare']>[0],
  origin: string,
): Promise<Payment> {
  const { signal } = parameters
  // A provider's hook that never answers must not hold the request past its deadline.
  const settle = (hook: () => Promise<void>) => raceSignal(settling(hook), signal)
  // Its failure must not change what happened to the payment (the server decided that): the
  // provider owns its own state.
  const settleQuietly = (hook: () => Promise<void>) => settle(hook).catch(() => {})
  const preparing = provider.prepare(parameters)
  const prepared = await raceSignal(preparing, signal).catch((error: unknown) => {
    // Prepared after the deadline: nothing will use it.
    if (signal.aborted)
      preparing.then(
        (late) => settling(() => late.rollback()).catch(() => {}),
        () => {},
      )
    throw error
  })
  let reservation: Reservation
  try {
    reservation = await policy.approve(
      { challenge: parameters.challenge, quote: checkQuote(prepared.quote), origin },
      signal,
    )
  } catch (error) {
    await settleQuietly(() => prepared.rollback())
    throw error
  }
  const bearer = prepared.bearer === true
  return {
    quote: prepared.quote,
    bearer,
    authorize: () => prepared.authorize(),
    async commit(receipt, outcome) {
      reservation.commit()
      // The server has the payment: a provider that cannot record it must not lose the answer.
      await settleQuietly(() => prepared.commit(receipt, outcome))
      const { feePaid } = prepared
      if (feePaid) reservation.feePaid(() => feePaid())
    },
    async rollback() {
      reservation.release()
      await settleQuietly(() => prepared.rollback())
    },
    async reject() {
      if (bearer) reservation.commit()
      else reservation.release()
      // Unlike the other hooks, a failure here is reported: paying again on top of a provider
      // state that could not be undone is not safe.
      const failure = await settle(() => prepared.rollback()).then(
        () => undefined,
        (error: unknown) => error ?? new Error('The provider failed to undo the payment.'),
      )
      return { settled: bearer, failure }
    },
  }
}

/** What a provider's hook settles to, a synchronous throw included (a hook need not be async). */
function settling<value>(hook: () => value | Promise<value>): Promise<value> {
  return new Promise<value>((resolve) => resolve(hook()))
}

function decodeReceipt(response: Response): Receipt.Receipt | undefined {
  try {
    return Receipt.fromResponse(response)
  } catch {
    return undefined
  }
}

/** Calls an observability hook; its failure, sync or async, must not break a payment. */
function notify<event>(hook: ((event: event) => unknown) | undefined, event: event) {
  if (!hook) return
  try {
    Promise.resolve(hook(event)).catch(() => {})
  } catch {}
}
