import {
  type Chain,
  HttpRequestError,
  type HttpTransportConfig,
  http,
  RpcRequestError,
  stringify,
} from 'viem'
import { defaultProvider } from '../flow/defaultProvider.js'
import type { PaymentHooks } from '../flow/hooks.js'
import { createPaymentFlow } from '../flow/paymentFlow.js'
import type { SpendingPolicy } from '../flow/policy.js'
import { cached } from '../internal/cached.js'
import { inBandChallengeOf, type inBandSignalling } from '../internal/inBand.js'
import { type Call, callsOf } from '../internal/inFlightCalls.js'
import { redactUrl } from '../internal/redactUrl.js'
import type { PaymentProvider } from '../providers/PaymentProvider.js'
import type { PaidCalls } from './paidCalls.js'

type Fetch = NonNullable<HttpTransportConfig['fetchFn']>

/** What every sender of one `mppHttp` transport shares. */
export type SenderContext = {
  url: string | undefined
  /** The transport's http() options (its payment options taken out). */
  httpConfig: HttpTransportConfig
  provider: PaymentProvider | undefined
  policy: SpendingPolicy
  hooks: PaymentHooks
  paymentTimeout: number
  mayCarryCredentials: (url: URL) => boolean
  paidCalls: PaidCalls
  inBand: ReturnType<typeof inBandSignalling>
  /** The fetch the flow's own requests go through (read for in-band signals). */
  flowFetch: Fetch
  /** The fetch unpaid requests go through (batches read for in-band signals). */
  unpaidFetch: Fetch
}

/**
 * The inner http() transports of one chain and timeout, and the payment flow they hand a 402
 * to. They apply viem's own timeout: a 402 leaves it behind, since the payment flow is given the
 * caller's own signal and its own deadline, so a payment is never cut short. One inner transport
 * per caller's signal carries that signal to the flow (http() batches per signal too); calls
 * without one share a single one. `send` is the inner transport's request function: it throws
 * JSON-RPC errors untyped, for the retry layer above to type them once, as http() does.
 *
 * @example
 * ```ts
 * const { send, value, origin } = createSender(context, chain, 10_000)
 * const result = await send({ method: 'eth_blockNumber' })
 * ```
 */
export function createSender(context: SenderContext, chain: Chain | undefined, timeout: number) {
  const { url, httpConfig, provider, paidCalls, inBand } = context
  const flow = createPaymentFlow({
    getProvider: provider ? async () => provider : defaultProvider(chain, url),
    policy: context.policy,
    fetchFn: context.flowFetch,
    chainId: chain?.id,
    paymentTimeout: context.paymentTimeout,
    mayCarryCredentials: context.mayCarryCredentials,
    ...context.hooks,
  })
  const answer402 = async (
    input: string | URL | Request,
    init: RequestInit,
    response: Response,
  ) => {
    const calls = callsOf(init.body)
    // Ranking pings: the 402 shows the endpoint is up, which is all a ping asks.
    if (isPing(calls)) {
      await response.body?.cancel()
      return listening(init.body)
    }
    return paidCalls.paidFor(calls, flow.pay(urlOf(input), init, response), origin)
  }
  /** The request paid before it is sent, if the provider holds a challenge for it. */
  const presend = (
    input: string | URL | Request,
    init: RequestInit,
  ): Promise<Response> | undefined => {
    const calls = callsOf(init.body)
    // A ranking ping is never paid.
    if (isPing(calls)) return undefined
    const paying = flow.presend(urlOf(input), init)
    return paying && paidCalls.paidFor(calls, paying, origin)
  }
  const make = (signal: AbortSignal | undefined) =>
    http(url, {
      ...httpConfig,
      methods: undefined,
      retryCount: 0,
      async fetchFn(input, init = {}) {
        // Once the provider has paid and can pay before being asked, a request may carry its
        // payment at once; the flow's deadline and the caller's signal then replace the timeout.
        if (flow.presending) {
          const paid = presend(input, { ...init, signal })
          if (paid) return paid
        }
        const response = await context.unpaidFetch(input, init)
        // With the check above, the only work on the unpaid path.
        if (response.status !== 402) return response
        return answer402(input, { ...init, signal }, response)
      },
    })({ chain, retryCount: 0, timeout })
  // Without a signal of its own, a call has the one of `fetchOptions`, if any, as with http().
  const unsignaled = make(httpConfig.fetchOptions?.signal ?? undefined)
  const signaled = new WeakMap<AbortSignal, typeof unsignaled>()
  const send: typeof unsignaled.request = async (args, options) => {
    const { signal } = options ?? {}
    const inner = signal ? cached(signaled, signal, () => make(signal)) : unsignaled
    try {
      return await inner.config.request(args as never, options)
    } catch (error) {
      const challenge = inBandChallengeOf(error)
      if (!challenge) throw error
      return payInBand(args as Call, challenge, signal)
    }
  }
  /**
   * A single call answered `-32042` in a `200`: the same request, paid through the flow. A
   * payment error comes back as the 402 that stands for it (for the attempt to find).
   */
  const payInBand = async (call: Call, challenge: Response, signal?: AbortSignal) => {
    const endpoint = value?.url ?? url ?? ''
    const body = stringify({ jsonrpc: '2.0', id: 0, method: call.method, params: call.params })
    inBand.signalsInBand(endpoint)
    const init: RequestInit = {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body,
    }
    const answer = await answer402(endpoint, { ...init, signal }, challenge)
    if (answer.status === 402)
      throw new HttpRequestError({
        body: JSON.parse(body),
        headers: answer.headers,
        status: 402,
        url: endpoint,
      })
    const data = (await answer.json()) as {
      result?: unknown
      error?: { code: number; message: string }
    }
    if (data.error)
      throw new RpcRequestError({ body: JSON.parse(body), error: data.error, url: endpoint })
    return data.result as never
  }
  // The endpoint as errors name it: http() resolves a missing `url` to the chain's own RPC.
  const { value } = unsignaled
  const origin: string = value?.url ? redactUrl(value.url) : '<chain default>'
  return { send, value, origin }
}

/** Whether a request of `calls` is a ranking ping of `fallback()`: `net_listening` calls only. */
function isPing(calls: readonly Call[] | undefined) {
  return !!calls?.length && calls.every(({ method }) => method === 'net_listening')
}

function urlOf(input: string | URL | Request) {
  return String(input instanceof Request ? input.url : input)
}

/** The answer to a request of `net_listening` calls: `true` for each, with its id. */
function listening(body: RequestInit['body']) {
  const parsed = JSON.parse(String(body)) as { id?: unknown } | { id?: unknown }[]
  const answer = ({ id }: { id?: unknown }) => ({ jsonrpc: '2.0', id, result: true })
  return new Response(JSON.stringify(Array.isArray(parsed) ? parsed.map(answer) : answer(parsed)), {
    headers: { 'content-type': 'application/json' },
  })
}
