import { Challenge } from 'mppx'
import {
  isPaymentError,
  PaymentFailedError,
  PaymentRefusedError,
  PaymentRequiredError,
} from '../errors.js'
import { sendWithinOrigin } from '../internal/sendWithinOrigin.js'
import { raceSignal } from '../internal/signal.js'
import { decodeChallenges } from '../internal/wwwAuthenticate.js'
import { classifyRejection, type Problem, readProblem } from '../Problem.js'
import type { PaidRequest, PaymentProvider } from '../providers/PaymentProvider.js'
import { choose } from './challenges.js'
import { notify, type PaymentHooks } from './hooks.js'
import { payAgainRules } from './payAgain.js'
import { decodeReceipt, type Payment, startPayment } from './payment.js'
import type { PaymentEvent, SpendingPolicy } from './policy.js'

/** Paid attempts per request at most: a first payment, and two after recoverable rejections. */
export const maxPaymentRounds = 3

export const unsent =
  'The payment was not completed in time or the caller gave up; nothing was sent.'

/** What the rounds of every request of a flow share. */
export type RoundsContext = {
  fetchFn: (input: string, init: RequestInit) => Promise<Response>
  policy: SpendingPolicy
  chainId: number | undefined
  hooks: PaymentHooks
  /** A payment was accepted: from now on its provider may pay before the server asks. */
  onAccepted: (provider: PaymentProvider) => void
}

/** One request to pay for, and what its first round pays. */
export type Rounds = {
  url: string
  origin: string
  init: RequestInit
  request: PaidRequest
  provider: PaymentProvider
  /** What the first round pays: a challenge of the 402 `response`, or a pre-sent `challenge`. */
  first: { response: Response } | { challenge: Challenge.Challenge }
}

/**
 * The payment flow's state machine for one request: pays a challenge, sends the request with the
 * credential, and on a rejection the flow can act on pays a fresh challenge — at most
 * {@link maxPaymentRounds} times, never the same challenge twice — until the server accepts (its
 * answer) or a typed error ends it. Every step waits under `signal`, the request's deadline.
 *
 * @example
 * ```ts
 * const answer = await payRounds(context, signal, { url, origin, init, request, provider, first: { response } })
 * ```
 */
export async function payRounds(
  context: RoundsContext,
  signal: AbortSignal,
  { url, origin, init, request, provider, first }: Rounds,
): Promise<Response> {
  const state: RoundsState = {
    context,
    signal,
    origin,
    provider,
    send: (credential) => sendWithinOrigin(context.fetchFn, url, init, credential, signal),
    paid: new Set(),
    taken: false,
    rejection: undefined,
  }
  const rules = payAgainRules(provider, signal)
  let next = first

  for (let round = 1; ; round++) {
    const presented = 'challenge' in next
    const challenge = 'challenge' in next ? next.challenge : challengeOf(state, next.response)
    state.paid.add(challenge.id)
    const payment = await startPayment(
      provider,
      context.policy,
      { challenge, request, signal },
      origin,
    ).catch((error: unknown) => {
      if (isPaymentError(error)) throw error
      throw fail(state, {
        shortMessage: signal.aborted ? unsent : 'The payment could not be prepared.',
        settled: false,
        cause: error,
      })
    })
    const event: PaymentEvent = { challenge, quote: payment.quote, origin }
    const answer = await sendPaid(state, payment, challenge, event)

    if (answer.ok) {
      const receipt = decodeReceipt(answer)
      await payment.commit(receipt, { accepted: true })
      if (provider.challengeFor) context.onAccepted(provider)
      notify(context.hooks.onReceipt, { ...event, receipt })
      return answer
    }

    const problem = await readProblem(answer)
    if (answer.status !== 402 && answer.status !== 410) {
      // The server failed after receiving the credential: it may have taken the payment.
      await payment.commit(undefined, { accepted: false })
      throw fail(state, {
        shortMessage: `The server answered ${answer.status} to the paid request.`,
        status: answer.status,
        problem,
        settled: true,
      })
    }

    const { settled, failure } = await payment.reject()
    state.taken ||= settled
    notify(context.hooks.onPaymentRejected, { ...event, status: answer.status, problem })
    const rejection = { status: answer.status, problem }
    state.rejection = rejection
    const rejected = (shortMessage: string, cause?: unknown) =>
      fail(state, { shortMessage, ...rejection, settled, cause })
    if (failure) throw rejected('The server rejected the payment, and undoing it failed.', failure)
    if (round === maxPaymentRounds)
      throw rejected(`The server rejected ${maxPaymentRounds} payments for one request.`)
    await rules.assertMayPayAgain(
      classifyRejection(answer.status, problem),
      { challenge, presented, bearer: payment.bearer, problem },
      rejected,
    )

    // A rejection normally carries a fresh challenge; otherwise ask for one.
    if (decodeChallenges(answer).length > 0) {
      next = { response: answer }
      continue
    }
    const response = await state.send().catch((error: unknown) => {
      throw rejected('Asking the server for a fresh challenge failed.', error)
    })
    // Unpaid now (e.g. free again): the answer is the request's.
    if (response.status !== 402) return response
    next = { response }
  }
}

/** What the rounds of one request share, from one round to the next. */
type RoundsState = {
  context: RoundsContext
  signal: AbortSignal
  origin: string
  provider: PaymentProvider
  /** Sends the request, with a credential or without. */
  send: (credential?: { header: string; value: string }) => Promise<Response>
  /** The ids of the challenges paid: none is paid twice. */
  paid: Set<string>
  /** Once a rejected bearer payment may have been taken, every later failure says so. */
  taken: boolean
  /** The last rejection, if a payment was rejected. */
  rejection: { status: number; problem: Problem | undefined } | undefined
}

/** The request's `PaymentFailedError`: settled if this failure's payment, or an earlier one, may have been taken. */
function fail(
  state: RoundsState,
  parameters: Omit<PaymentFailedError.Parameters, 'origin'>,
): PaymentFailedError {
  return new PaymentFailedError({
    ...parameters,
    settled: parameters.settled || state.taken,
    origin: state.origin,
  })
}

/** The challenge of a 402 (or 410) to pay next, or why there is none. */
function challengeOf(state: RoundsState, response: Response): Challenge.Challenge {
  const { context, origin, provider, paid, rejection } = state
  const challenges = decodeChallenges(response)
  notify(context.hooks.onChallenge, { challenges, origin })
  const choice = choose(challenges, provider, { chainId: context.chainId, paid })
  if (choice.challenge) return choice.challenge
  if (rejection)
    throw fail(state, {
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

/** Signs the payment and sends the request with it: the server's answer. */
async function sendPaid(
  state: RoundsState,
  payment: Payment,
  challenge: Challenge.Challenge,
  event: PaymentEvent,
): Promise<Response> {
  const { signal } = state
  let authorization: string
  try {
    // A signer that never answers must not hold the request: the deadline ends the wait, and a
    // credential signed after it is never sent.
    signal.throwIfAborted()
    authorization = await raceSignal(payment.authorize(), signal)
  } catch (error) {
    await payment.rollback()
    // Refused while signing (a fleet budget): nothing was signed.
    if (error instanceof PaymentRefusedError) throw error
    throw fail(state, {
      shortMessage: signal.aborted ? unsent : 'The payment could not be made.',
      settled: false,
      cause: error,
    })
  }
  notify(state.context.hooks.onPaymentSent, event)
  try {
    // The challenge names the header for its credential; `Authorization` by default.
    return await state.send({
      header: Challenge.credentialHeader(challenge),
      value: authorization,
    })
  } catch (error) {
    // The credential may have reached the server: the payment counts as made.
    await payment.commit(undefined, { accepted: false })
    throw fail(state, {
      shortMessage: 'The paid request failed after the payment was sent.',
      settled: true,
      cause: error,
    })
  }
}
