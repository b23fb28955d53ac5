import type { Challenge } from 'mppx'
import { isPaymentError, PaymentFailedError, PaymentRequiredError } from '../errors.js'
import { createDeadline, releaseAfterBody } from '../internal/deadline.js'
import { redactUrl } from '../internal/redactUrl.js'
import { withinOrigin } from '../internal/sendWithinOrigin.js'
import { raceSignal } from '../internal/signal.js'
import { decodeChallenges } from '../internal/wwwAuthenticate.js'
import type { PaidRequest, PaymentProvider } from '../providers/PaymentProvider.js'
import { choose } from './challenges.js'
import type { PaymentHooks } from './hooks.js'
import type { SpendingPolicy } from './policy.js'
import { payRounds, type RoundsContext, unsent } from './rounds.js'

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
  const rounds: RoundsContext = {
    fetchFn,
    policy,
    chainId,
    hooks: config,
    onAccepted: (provider) => {
      presender = provider
    },
  }

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
      return payRounds(rounds, signal, {
        url,
        origin,
        init,
        request,
        provider,
        first: { response },
      })
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
      payRounds(rounds, signal, { url, origin, init, request, provider, first: { challenge } }),
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
