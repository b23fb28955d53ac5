import { Challenge, Receipt } from 'mppx'
import { rankByAcceptPayment } from '../AcceptPayment.js'
import { PaymentFailedError, PaymentRequiredError } from '../errors.js'
import { redactUrl } from '../internal/redactUrl.js'
import { classifyRejection, type Problem, readProblem } from '../Problem.js'
import type {
  PaidRequest,
  PaymentProvider,
  PaymentQuote,
  PreparedPayment,
} from '../providers/PaymentProvider.js'
import { decodeChallenges, describe, unpayableReason } from './challenges.js'
import type { SpendingPolicy } from './policy.js'

/** Paid attempts per request at most: a first payment, and two after recoverable rejections. */
export const maxPaymentRounds = 3

/** Hops a paid request may follow within the same origin. */
const maxRedirects = 3

export type PaymentEvent = {
  /** The challenge paid. */
  challenge: Challenge.Challenge
  /** Its decoded cost. */
  quote: PaymentQuote
  /** Origin of the endpoint (no path, query or credentials). */
  origin: string
}

export type PaymentHooks = {
  /** A 402 arrived; `challenges` are all the Payment challenges it decoded to. */
  onChallenge?:
    | ((event: { challenges: readonly Challenge.Challenge[]; origin: string }) => void)
    | undefined
  /** A credential is about to be sent. */
  onPaymentSent?: ((event: PaymentEvent) => void) | undefined
  /** The server rejected a payment (402 or 410); it was rolled back. */
  onPaymentRejected?:
    | ((event: PaymentEvent & { status: number; problem: Problem | undefined }) => void)
    | undefined
  /** The server accepted a payment; `receipt` is its decoded `Payment-Receipt`, if it sent one. */
  onReceipt?: ((event: PaymentEvent & { receipt: Receipt.Receipt | undefined }) => void) | undefined
}

export type PaymentFlowConfig = PaymentHooks & {
  /** Who pays. */
  provider: PaymentProvider | undefined
  /** Spending rules shared by every request of the transport. */
  policy: SpendingPolicy
  /** The fetch that sends requests. */
  fetchFn: (input: string, init: RequestInit) => Promise<Response>
  /** Chain of the client; challenges for other chains are passed over. */
  chainId: number | undefined
  /** The caller's own abort signal (from `fetchOptions.signal`). */
  signal: AbortSignal | null | undefined
  /** How long a request's whole payment flow may take, in ms. */
  paymentTimeout: number
}

/**
 * Creates the payment flow for a transport: given a request that was answered 402, it pays and
 * resends the request until the server accepts it, and returns the server's answer. It throws
 * `PaymentRequiredError`, `PaymentRefusedError` or `PaymentFailedError` otherwise.
 *
 * Every step that moves money is two-phase: a payment is committed when the server accepts it or
 * when its outcome is unknown, and rolled back when the server rejects it.
 */
export function createPaymentFlow(config: PaymentFlowConfig) {
  const { provider, policy, fetchFn, chainId, paymentTimeout } = config

  return async function pay(url: string, init: RequestInit, response: Response): Promise<Response> {
    const origin = redactUrl(url)
    await response.body?.cancel()
    if (!provider) throw new PaymentRequiredError({ reason: 'noProvider', origin })

    // The payment flow has its own deadline: viem's request timeout is for unpaid requests.
    const signal = AbortSignal.any(
      [config.signal, AbortSignal.timeout(paymentTimeout)].filter((s) => !!s) as AbortSignal[],
    )
    const request: PaidRequest = {
      url,
      method: init.method ?? 'POST',
      headers: new Headers(init.headers),
      body: init.body as string | undefined,
    }
    const send = (credential?: { header: string; value: string }) =>
      sendFollowingSameOrigin(fetchFn, request, credential, signal)
    const paid = new Set<string>()
    let rejection: { status: number; problem: Problem | undefined } | undefined

    for (let round = 0; round < maxPaymentRounds; round++) {
      const challenge = choose(response, { provider, chainId, paid, origin, rejection, config })
      paid.add(challenge.id)

      const prepared = await prepareOrFail(provider, { challenge, request, signal }, origin)
      const event: PaymentEvent = { challenge, quote: prepared.quote, origin }
      const reservation = await policy.approve(event).catch(async (error: Error) => {
        await prepared.rollback()
        throw error
      })

      let authorization: string
      try {
        authorization = await prepared.authorize()
      } catch (error) {
        reservation.release()
        await prepared.rollback()
        throw new PaymentFailedError({
          shortMessage: 'The payment could not be made.',
          origin,
          settled: false,
          cause: error as Error,
        })
      }

      notify(config.onPaymentSent, event)
      let answer: Response
      try {
        // The challenge names the header for its credential; `Authorization` by default.
        answer = await send({ header: Challenge.credentialHeader(challenge), value: authorization })
      } catch (error) {
        // The credential may have reached the server: the payment counts as made.
        reservation.commit()
        await prepared.commit(undefined)
        throw new PaymentFailedError({
          shortMessage: 'The paid request failed after the payment was sent.',
          origin,
          settled: true,
          cause: error as Error,
        })
      }

      if (answer.ok) {
        const receipt = decodeReceipt(answer)
        reservation.commit()
        await prepared.commit(receipt)
        notify(config.onReceipt, { ...event, receipt })
        return answer
      }

      const problem = await readProblem(answer)
      if (answer.status !== 402 && answer.status !== 410) {
        // The server failed after receiving the credential: it may have taken the payment.
        reservation.commit()
        await prepared.commit(undefined)
        throw new PaymentFailedError({
          shortMessage: `The server answered ${answer.status} to the paid request.`,
          origin,
          status: answer.status,
          problem,
          settled: true,
        })
      }

      reservation.release()
      await prepared.rollback()
      notify(config.onPaymentRejected, { ...event, status: answer.status, problem })
      rejection = { status: answer.status, problem }
      const reason = classifyRejection(answer.status, problem)
      const recoverable =
        reason === 'challengeExpired' ||
        (reason !== 'rejected' &&
          (await provider.recover?.({ reason, challenge, problem })) === true)
      if (!recoverable)
        throw new PaymentFailedError({
          shortMessage: 'The server rejected the payment.',
          origin,
          status: answer.status,
          problem,
          settled: false,
        })

      // A rejection normally carries a fresh challenge; otherwise ask for one.
      if (decodeChallenges(answer).length > 0) {
        response = answer
        continue
      }
      response = await send().catch((error: Error) => {
        throw new PaymentFailedError({
          shortMessage: 'Asking the server for a fresh challenge failed.',
          origin,
          settled: false,
          cause: error,
        })
      })
      // Unpaid now (e.g. free again): the answer is the request's.
      if (response.status !== 402) return response
    }

    throw new PaymentFailedError({
      shortMessage: `The server rejected ${maxPaymentRounds} payments for one request.`,
      origin,
      status: rejection?.status,
      problem: rejection?.problem,
      settled: false,
    })
  }
}

function choose(
  response: Response,
  {
    provider,
    chainId,
    paid,
    origin,
    rejection,
    config,
  }: {
    provider: PaymentProvider
    chainId: number | undefined
    paid: ReadonlySet<string>
    origin: string
    rejection: { status: number; problem: Problem | undefined } | undefined
    config: PaymentHooks
  },
): Challenge.Challenge {
  const challenges = decodeChallenges(response)
  notify(config.onChallenge, { challenges, origin })
  const now = Date.now()
  const candidates: Challenge.Challenge[] = []
  const passedOver: string[] = []
  for (const challenge of challenges) {
    const reason =
      unpayableReason(challenge, { chainId, paid, now }) ??
      (provider.supports(challenge) ? undefined : 'not supported by the provider')
    if (reason) passedOver.push(`${describe(challenge)}: ${reason}`)
    else candidates.push(challenge)
  }
  const ranked = rankByAcceptPayment(candidates, provider.acceptPayment)
  for (const challenge of candidates)
    if (!ranked.includes(challenge))
      passedOver.push(`${describe(challenge)}: not in the provider's Accept-Payment`)
  const challenge = provider.select ? provider.select(ranked) : ranked[0]
  if (challenge) return challenge
  if (rejection)
    throw new PaymentFailedError({
      shortMessage: 'The server rejected the payment and offered nothing new to pay.',
      origin,
      status: rejection.status,
      problem: rejection.problem,
      settled: false,
    })
  throw new PaymentRequiredError({
    reason: challenges.length === 0 ? 'noChallenge' : 'noSupportedChallenge',
    origin,
    offered: passedOver,
  })
}

async function prepareOrFail(
  provider: PaymentProvider,
  parameters: Parameters<PaymentProvider['prepare']>[0],
  origin: string,
): Promise<PreparedPayment> {
  try {
    return await provider.prepare(parameters)
  } catch (error) {
    throw new PaymentFailedError({
      shortMessage: 'The payment could not be prepared.',
      origin,
      settled: false,
      cause: error as Error,
    })
  }
}

/**
 * Sends the request (with the credential, if any) without following redirects to other origins:
 * a credential must never reach a server it was not made for.
 */
async function sendFollowingSameOrigin(
  fetchFn: PaymentFlowConfig['fetchFn'],
  request: PaidRequest,
  credential: { header: string; value: string } | undefined,
  signal: AbortSignal,
) {
  const headers = new Headers(request.headers)
  if (credential) headers.set(credential.header, credential.value)
  let url = request.url
  for (let hop = 0; ; hop++) {
    const response = await fetchFn(url, {
      method: request.method,
      headers,
      body: request.body,
      signal,
      redirect: 'manual',
    })
    const location = response.headers.get('location')
    const redirected =
      response.type === 'opaqueredirect' || (response.status >= 300 && response.status < 400)
    if (!redirected) return response
    await response.body?.cancel()
    const next = location ? new URL(location, url) : undefined
    if (!next || next.origin !== new URL(url).origin || hop >= maxRedirects)
      throw new Error(
        `The paid request was redirected${next ? ` to ${next.origin}` : ''}; the credential was not sent on.`,
      )
    url = next.href
  }
}

function decodeReceipt(response: Response): Receipt.Receipt | undefined {
  try {
    return Receipt.fromResponse(response)
  } catch {
    return undefined
  }
}

/** Calls an observability hook; its errors must not break a payment already made. */
function notify<event>(hook: ((event: event) => void) | undefined, event: event) {
  try {
    hook?.(event)
  } catch {}
}
