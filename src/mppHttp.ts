import {
  BaseError,
  type Chain,
  createTransport,
  type EIP1193RequestFn,
  HttpRequestError,
  type HttpTransportConfig,
  http,
  RpcRequestError,
  type RpcSchema,
  shouldThrow,
  stringify,
  type Transport,
} from 'viem'
import { buildRequest } from 'viem/utils'
import { isPaymentError, type PaymentError, PaymentFailedError } from './errors.js'
import { defaultProvider } from './flow/defaultProvider.js'
import type { PaymentHooks } from './flow/hooks.js'
import { createPaymentFlow } from './flow/paymentFlow.js'
import { credentialPolicy } from './flow/plainHttp.js'
import type { SpendingPolicyConfig } from './flow/policy.js'
import { transportPayments } from './flow/transportPayments.js'
import { inBandChallengeOf, inBandSignalling } from './internal/inBand.js'
import { type Attempt, type Call, callsOf, createInFlightCalls } from './internal/inFlightCalls.js'
import { paidTransportMarker } from './internal/paidTransportMarker.js'
import { redactErrorInPlace, redactUrl } from './internal/redactUrl.js'
import type { PaymentProvider } from './providers/PaymentProvider.js'

export type MppHttpTransportConfig<
  rpcSchema extends RpcSchema | undefined = undefined,
  raw extends boolean = false,
> = HttpTransportConfig<rpcSchema, raw> &
  SpendingPolicyConfig &
  PaymentHooks & {
    /**
     * Who pays when the endpoint answers `402 Payment Required`. Default: in Node, a Tempo charge
     * paid with a key found on the first 402 (`TEMPO_PRIVATE_KEY`, then
     * `$TEMPO_HOME/wallet/keys.toml`); elsewhere none, and a 402 throws `PaymentRequiredError`.
     */
    provider?: PaymentProvider | undefined
    /**
     * How long one request's whole payment flow (paying, resending, recovering) may take, in ms;
     * `0` for no limit. viem's `timeout` applies to unpaid requests only, so that it never cuts a
     * payment short. Anything but a number from 0 to 2147483647 throws
     * `InvalidPaymentTimeoutError` when the transport is made.
     * @default 120_000
     */
    paymentTimeout?: number | undefined
    /**
     * Plain-`http://` origins (`http://host:port`) to which payment credentials may go all the
     * same: a devnet on your own network. Off by default: credentials go only over `https://`
     * and to this machine, since anyone on the path of plain http can read them (and settle a
     * charge's). Each origin listed warns once per process when it is first paid. An entry that
     * is not such an origin throws `InvalidPlainHttpOriginError` when the transport is made.
     * @default []
     */
    dangerouslyPayOverPlainHttp?: readonly string[] | undefined
  }

export type MppHttpTransport<
  rpcSchema extends RpcSchema | undefined = undefined,
  raw extends boolean = false,
> = Transport<
  'http',
  {
    fetchOptions?: HttpTransportConfig['fetchOptions'] | undefined
    url?: string | undefined
  },
  EIP1193RequestFn<rpcSchema, raw>
>

/**
 * A viem HTTP transport that pays `402 Payment Required` answers under the Machine Payments
 * Protocol and resends the request with the credential. It takes every option of viem's `http()`
 * with the same meaning, and behaves exactly like it until a 402 arrives.
 *
 * One payment covers one HTTP request: a batch of N calls costs one payment. A payment is never
 * made twice for one request: viem's retries and `fallback()` never repeat a paid flow. Once a
 * provider that can pay before the server asks (`challengeFor`, e.g. a session) has paid, each
 * request carries its payment on the way out: one HTTP request per paid call. A request
 * made only of `net_listening` calls (the pings of `fallback()`'s ranking) is never paid: a 402
 * shows that the endpoint is up, and the transport answers `true` for it.
 *
 * @example
 * ```ts
 * import { createPublicClient, http } from 'viem'
 * import { privateKeyToAccount } from 'viem/accounts'
 * import { tempo } from 'viem/chains'
 * import { charge, mppHttp } from 'viem-mpp'
 *
 * const account = privateKeyToAccount(process.env.TEMPO_PRIVATE_KEY as `0x${string}`)
 * const client = createPublicClient({
 *   chain: tempo,
 *   transport: mppHttp('https://rpc.example.com', {
 *     provider: charge({ account, client: createPublicClient({ chain: tempo, transport: http() }) }),
 *     maxAmount: 10_000n, // 0.01 USD per request at most
 *     budget: 1_000_000n, // 1 USD in all
 *   }),
 * })
 * ```
 */
export function mppHttp<
  const rpcSchema extends RpcSchema | undefined = undefined,
  raw extends boolean = false,
>(
  url?: string | undefined,
  config: MppHttpTransportConfig<rpcSchema, raw> = {},
): MppHttpTransport<rpcSchema, raw> {
  const { dangerouslyPayOverPlainHttp, fetchFn: fetchFn_, ...options } = config
  // Shared by every client built on this transport: the budget is the transport's.
  const { provider, policy, hooks, paymentTimeout, rest: httpConfig } = transportPayments(options)
  const mayCarryCredentials = credentialPolicy(dangerouslyPayOverPlainHttp)
  // A call travels through three layers:
  //   1. viem's retry layer (createTransport, with the caller's retryCount), around
  //   2. `attempt`, which knows whether its HTTP exchange was paid for (then it is final), around
  //   3. an inner http()'s own request function, with viem's timeout, which batches, sends and
  //      parses each attempt once, and whose fetch hands a 402 to the payment flow.

  // Attempts in flight, and whether a paid request carried them: those must not be repeated.
  const inFlight = createInFlightCalls()
  // A payment error travels through viem's HTTP client as a bare 402 response (a thrown error
  // would be wrapped into a retryable one); viem keeps that response's headers in the
  // HttpRequestError it throws, and `attempt` swaps that error back for the payment error.
  const failures = new WeakMap<Headers, PaymentError>()
  // The errors that carry a paid call's JSON-RPC error (their cause) through viem's retry layer.
  const paidCallFailures = new WeakSet<PaymentFailedError>()
  // The last payment made for a call (by its arguments), and how it ended (a payment error, or
  // undefined once the server accepted it): a caller who gives up learns whether it was taken.
  const payments = new WeakMap<
    Call,
    { attempt: Attempt; outcome: Promise<PaymentError | undefined> }
  >()
  // Looked up at call time, as http() does, so that a fetch patched later (msw, tests) is used.
  const fetchFn: NonNullable<HttpTransportConfig['fetchFn']> = (input, init) =>
    (fetchFn_ ?? fetch)(input, init)
  // In-band JSON-RPC signalling (-32042 in a 200) reaches the flow as the 402 it stands for. The
  // flow's own requests are read for it; unpaid ones only when a batch (a single call's -32042
  // is caught once viem has read it: the unpaid path reads nothing twice).
  const inBand = inBandSignalling()
  const flowFetch = inBand.fetch(fetchFn)
  const unpaidFetch = inBand.fetch(fetchFn, { inspect: ({ body }) => isBatch(body) })

  /**
   * The inner http() transports of a chain and timeout, made once, so that batches are shared by
   * every client built on this transport (viem's `fallback()` builds its transports anew for each
   * request). They apply viem's own timeout: a 402 leaves it behind, since the payment flow is
   * given the caller's own signal and its own deadline, so a payment is never cut short. One
   * inner transport per caller's signal carries that signal to the flow (http() batches per
   * signal too); calls without one share a single one.
   */
  const senders = new Map<string, ReturnType<typeof createSender>>()
  const senderFor = (chain: Chain | undefined, timeout: number) =>
    cached(senders, `${chain?.id}:${timeout}`, () => createSender(chain, timeout))

  function createSender(chain: Chain | undefined, timeout: number) {
    const getProvider = provider ? async () => provider : defaultProvider(chain, url)
    const flow = createPaymentFlow({
      getProvider,
      policy,
      fetchFn: flowFetch,
      chainId: chain?.id,
      paymentTimeout,
      mayCarryCredentials,
      ...hooks,
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
      return paidFor(calls, flow.pay(urlOf(input), init, response))
    }
    /** The request paid before it is sent, if the provider holds a challenge for it. */
    const presend = (input: string | URL | Request, init: RequestInit) => {
      const calls = callsOf(init.body)
      // A ranking ping is never paid.
      if (isPing(calls)) return undefined
      const paying = flow.presend(urlOf(input), init)
      return paying && paidFor(calls, paying)
    }
    /**
     * The answer of a paid request of `calls`: the attempts it carries are paid for, so that no
     * retry repeats them; a payment error comes back as a 402 that stands for it.
     */
    const paidFor = async (calls: Call[] | undefined, paying: Promise<Response>) => {
      const carried = inFlight.carriedBy(calls)
      const outcome = paying.then(
        () => undefined,
        (error: unknown) => asPaymentError(error, origin),
      )
      for (const attempt of carried) payments.set(attempt.call, { attempt, outcome })
      const failure = await outcome
      if (failure) {
        const standIn = new Response(null, { status: 402, statusText: 'Payment Required' })
        failures.set(standIn.headers, failure)
        return standIn
      }
      for (const attempt of carried) attempt.paid = true
      return paying
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
          const response = await unpaidFetch(input, init)
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
      // The inner transport's request function itself: it throws JSON-RPC errors untyped, for
      // the retry layer to type them once, as http() does.
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
     * payment error comes back as the 402 that stands for it (for `attempt` to find).
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
    const origin = value?.url ? redactUrl(value.url) : '<chain default>'
    return { send, value, origin }
  }

  return (parameters) => {
    const timeout = parameters.timeout ?? httpConfig.timeout ?? 10_000
    const { send, value, origin } = senderFor(parameters.chain, timeout)
    // `fallback()` makes its transports with `retryCount: 0`, and moves on to the next one past
    // any error it does not see as final: there, a paid call's error comes inside a final one.
    const inFallback = parameters.retryCount === 0

    const attempt = (async (args, options) => {
      const current = inFlight.begin(args as Call)
      try {
        return await send(args as never, options)
      } catch (error) {
        const failure = takeFailure(error)
        if (failure) throw failure
        if (!current.paid) throw error
        throw await paidCallFailure(error, args as Call, origin)
      } finally {
        inFlight.end(current)
      }
    }) as typeof send

    const { key = 'http', name = 'HTTP JSON-RPC', methods, retryDelay } = httpConfig
    // viem's retry layer, as http() has it, around attempts that know whether they were paid.
    const transport = createTransport(
      {
        key,
        name,
        methods,
        request: attempt,
        retryCount: httpConfig.retryCount ?? parameters.retryCount,
        retryDelay,
        timeout,
        type: 'http',
      },
      { ...value, [paidTransportMarker]: true },
    )

    /**
     * Throws what the retry layer threw, except for a payment error, which comes out of the RPC
     * error viem's retry layer puts around it (for its code), and a paid call's JSON-RPC error,
     * which comes out of the payment error that carried it (except inside `fallback()`, unless
     * `fallback()` would stop at it anyway).
     */
    const unwrap = (error: unknown) => {
      if (!(error instanceof BaseError)) throw error
      const payment = error.walk(isPaymentError) as PaymentError | null
      if (!payment) throw error
      if (!paidCallFailures.has(payment as PaymentFailedError)) throw payment
      const own = payment.cause as Error
      throw inFallback && !shouldThrow(own) ? payment : own
    }

    /**
     * The caller gave up (viem's retry layer ends the call at once, with the abort): if a payment
     * for this call had started since, the caller learns how it ended, once it has.
     */
    const afterAbort = async (abort: unknown, call: Call, since: number) => {
      const payment = payments.get(call)
      if (!payment || payment.attempt.sequence < since) throw abort
      const failure = await payment.outcome
      if (failure instanceof PaymentFailedError && failure.settled) throw failure
      if (failure) throw abort
      throw new PaymentFailedError({
        shortMessage: 'The caller gave up after the payment was made.',
        origin,
        settled: true,
        cause: abort,
      })
    }

    return {
      ...transport,
      request: ((args, options) => {
        const since = inFlight.sequence
        return transport
          .request(args as never, options)
          .catch((error: unknown) =>
            isAbortError(error) ? afterAbort(error, args as Call, since) : unwrap(error),
          )
      }) as typeof transport.request,
    }
  }

  /** The payment error behind a 402 that stands for one, if `error` is such a 402. */
  function takeFailure(error: unknown) {
    if (!(error instanceof BaseError)) return undefined
    const httpError = error.walk((e) => e instanceof HttpRequestError) as HttpRequestError | null
    return httpError?.headers ? failures.get(httpError.headers) : undefined
  }

  /**
   * The final error for a call whose paid request failed (a JSON-RPC error in the answer, or an
   * answer that could not be read): its cause is the call's own error, typed as viem types it
   * for http(), with its URLs cut down to the origin. viem's retry layer does not repeat it (its
   * code is final), nor would a retry layer above (`fallback()`'s): it carries no HTTP status to
   * retry by.
   */
  async function paidCallFailure(error: unknown, call: Call, origin: string) {
    const typed = await typedAsHttp(error, call)
    // The server's JSON-RPC answer reaches the caller; a failure to read the answer (a body
    // that stalls past paymentTimeout, a broken one) stays a payment failure.
    const answered = typed instanceof BaseError && !!typed.walk((e) => e instanceof RpcRequestError)
    for (let cause: unknown = typed; cause instanceof Error; cause = cause.cause)
      if (cause instanceof HttpRequestError || cause instanceof RpcRequestError) {
        cause.status = undefined
        cause.headers = undefined
      }
    const failure = new PaymentFailedError({
      shortMessage: 'The paid request failed; it was paid for, so it is not retried.',
      origin,
      settled: true,
      cause: redactErrorInPlace(typed),
    })
    if (answered) paidCallFailures.add(failure)
    return failure
  }
}

/** Whether `error` is an abort, as viem's retry layer tells one (which it never retries). */
function isAbortError(error: unknown) {
  return (error as { name?: unknown } | null)?.name === 'AbortError'
}

/** `error` as viem's request layer types it for http() (e.g. `MethodNotFoundRpcError`). */
function typedAsHttp(error: unknown, call: Call): Promise<Error> {
  return buildRequest(() => Promise.reject(error), { retryCount: 0 })(call as never).then(
    () => error as Error,
    (typed: Error) => typed,
  )
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

/** The flow throws payment errors only; anything else is a bug, treated as a payment made. */
function asPaymentError(error: unknown, origin: string): PaymentError {
  if (isPaymentError(error)) return error
  return new PaymentFailedError({
    shortMessage: 'The payment flow failed unexpectedly.',
    origin,
    settled: true,
    cause: error,
  })
}

/** The value of `key` in `cache`, made by `make` the first time it is asked for. */
function cached<key, value>(
  cache: { get(key: key): value | undefined; set(key: key, value: value): unknown },
  key: key,
  make: () => value,
): value {
  const found = cache.get(key)
  if (found !== undefined) return found
  const made = make()
  cache.set(key, made)
  return made
}

/** Whether a request body is a JSON-RPC batch. */
function isBatch(body: RequestInit['body']) {
  return typeof body === 'string' && body.trimStart().startsWith('[')
}
