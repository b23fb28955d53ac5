import {
  BaseError,
  type Chain,
  createTransport,
  type EIP1193RequestFn,
  HttpRequestError,
  type HttpTransportConfig,
  http,
  RpcError,
  RpcRequestError,
  type RpcSchema,
  shouldThrow,
  TimeoutError,
  type Transport,
} from 'viem'
import { isPaymentError, type PaymentError, PaymentFailedError } from './errors.js'
import { createPaymentFlow, type PaymentHooks } from './flow/paymentFlow.js'
import { createSpendingPolicy, type SpendingPolicyConfig } from './flow/policy.js'
import { defaultProvider } from './internal/defaultProvider.js'
import { createPaidCallLog } from './internal/paidCallLog.js'
import { paidTransportMarker } from './internal/paidTransportMarker.js'
import { redactUrl } from './internal/redactUrl.js'
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
     * How long one request's whole payment flow (paying, resending, recovering) may take, in ms.
     * viem's `timeout` applies to unpaid requests only, so that it never cuts a payment short.
     * @default 120_000
     */
    paymentTimeout?: number | undefined
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
 * made twice for one request: viem's retries and `fallback()` never repeat a paid flow.
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
  const {
    provider,
    maxAmount,
    budget,
    onPaymentRequired,
    onChallenge,
    onPaymentSent,
    onPaymentRejected,
    onReceipt,
    paymentTimeout = 120_000,
    fetchFn: fetchFn_,
    ...httpConfig
  } = config
  // A call travels through three layers:
  //   1. viem's retry layer (createTransport, with the caller's retryCount), around
  //   2. `attempt`, which knows whether its HTTP exchange was paid for (then it is final), around
  //   3. an inner http() that batches, sends and parses each attempt once, whose fetch applies
  //      viem's timeout to the unpaid leg and hands a 402 to the payment flow.

  // Shared by every client built on this transport: the budget is the transport's.
  const policy = createSpendingPolicy({ maxAmount, budget, onPaymentRequired })
  // Calls whose attempt was paid for: the retry layer must not pay for them again.
  const paidCalls = createPaidCallLog()
  // A payment error travels through viem's HTTP client as a bare 402 response (a thrown error
  // would be wrapped into a retryable one); viem keeps that response's headers in the
  // HttpRequestError it throws, and `attempt` swaps that error back for the payment error.
  const failures = new WeakMap<Headers, PaymentError>()
  // Looked up at call time, as http() does, so that a fetch patched later (msw, tests) is used.
  const fetchFn: NonNullable<HttpTransportConfig['fetchFn']> = (input, init) =>
    (fetchFn_ ?? fetch)(input, init)

  /**
   * One inner http() per chain and timeout, made once, so that batches are shared by every client
   * built on this transport (viem's `fallback()` builds its transports anew for each request).
   * It sends each attempt once, with viem's timeout off: the timeout is applied to the unpaid
   * leg below, so that the request's signal is the caller's own and a payment is never cut short.
   */
  const inners = new Map<string, ReturnType<typeof http>>()
  const innerFor = (chain: Chain | undefined, timeout: number) => {
    const key = `${chain?.id}:${timeout}`
    let inner = inners.get(key)
    if (inner) return inner
    const getProvider = provider ? async () => provider : defaultProvider(chain)
    const pay = createPaymentFlow({
      getProvider,
      policy,
      fetchFn,
      chainId: chain?.id,
      paymentTimeout,
      onChallenge,
      onPaymentSent,
      onPaymentRejected,
      onReceipt,
    })
    inner = http(url, {
      ...httpConfig,
      methods: undefined,
      retryCount: 0,
      async fetchFn(input, init = {}) {
        const response = await fetchWithTimeout(fetchFn, input, init, timeout)
        // The only work on the unpaid path.
        if (response.status !== 402) return response
        try {
          const paid = await pay(
            String(input instanceof Request ? input.url : input),
            init,
            response,
          )
          paidCalls.record(init.body)
          return paid
        } catch (error) {
          const failed = new Response(null, { status: 402, statusText: 'Payment Required' })
          failures.set(failed.headers, asPaymentError(error, url))
          return failed
        }
      },
    })
    inners.set(key, inner)
    return inner
  }

  return (parameters) => {
    const timeout = parameters.timeout ?? httpConfig.timeout ?? 10_000
    const inner = innerFor(parameters.chain, timeout)({ ...parameters, retryCount: 0, timeout: 0 })

    const attempt = (async (args, options) => {
      const start = paidCalls.sequence
      try {
        return await inner.request(args as never, options)
      } catch (error) {
        const failure = takeFailure(error)
        if (failure) throw failure
        // A paid call that failed with an error viem would retry, or that `fallback()` would take
        // to its next transport, must go no further: either would pay for it again. (Errors
        // final for both, such as a revert, stay as they are.)
        if (!shouldThrow(error as Error) && paidCalls.paidSince(start, args))
          throw new PaymentFailedError({
            shortMessage: 'The paid request failed; it was paid for, so it is not retried.',
            origin: url ? redactUrl(url) : '<chain default>',
            settled: true,
            cause: error,
          })
        // The inner transport already typed JSON-RPC errors; hand back the original so that the
        // retry layer types it once, exactly as http() does.
        if (error instanceof RpcError && error.cause instanceof RpcRequestError) throw error.cause
        throw error
      }
    }) as typeof inner.request

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
      { ...inner.value, [paidTransportMarker]: true },
    )

    return {
      ...transport,
      request: (async (args, options) => {
        try {
          return await transport.request(args as never, options)
        } catch (error) {
          throw unwrap(error)
        }
      }) as typeof transport.request,
    }
  }

  /** The payment error behind a 402 that stands for one, if `error` is such a 402. */
  function takeFailure(error: unknown) {
    if (!(error instanceof BaseError)) return undefined
    const httpError = error.walk((e) => e instanceof HttpRequestError) as HttpRequestError | null
    return httpError?.headers ? failures.get(httpError.headers) : undefined
  }
}

/**
 * Sends the unpaid leg with viem's timeout semantics: past `timeout` ms, whether the answer has
 * not come or its body is still arriving, the request fails with viem's `TimeoutError` (the abort
 * reason, which fetch and the body stream both throw).
 */
function fetchWithTimeout(
  fetchFn: NonNullable<HttpTransportConfig['fetchFn']>,
  input: Parameters<NonNullable<HttpTransportConfig['fetchFn']>>[0],
  init: RequestInit,
  timeout: number,
) {
  if (timeout <= 0) return fetchFn(input, init)
  const timer = new AbortController()
  const pending = setTimeout(() => {
    const url = String(input instanceof Request ? input.url : input)
    timer.abort(new TimeoutError({ body: parseBody(init.body), url }))
  }, timeout)
  // The body may be read long after this returns, so the timer is left to run out; in Node it
  // must not keep the process alive meanwhile.
  ;(pending as { unref?: () => void }).unref?.()
  return fetchFn(input, {
    ...init,
    signal: init.signal ? AbortSignal.any([init.signal, timer.signal]) : timer.signal,
  })
}

/** The request body as viem's errors show it: the calls, without the `jsonrpc` and `id` it adds. */
function parseBody(body: RequestInit['body']) {
  const call = ({ jsonrpc: _jsonrpc, id: _id, ...rest }: Record<string, unknown>) => rest
  try {
    const parsed = JSON.parse(String(body)) as Record<string, unknown> | Record<string, unknown>[]
    return Array.isArray(parsed) ? parsed.map(call) : call(parsed)
  } catch {
    return { body: String(body) }
  }
}

/** The flow throws payment errors only; anything else is a bug, treated as a payment made. */
function asPaymentError(error: unknown, url: string | undefined): PaymentError {
  if (isPaymentError(error)) return error
  return new PaymentFailedError({
    shortMessage: 'The payment flow failed unexpectedly.',
    origin: url ? redactUrl(url) : '<chain default>',
    settled: true,
    cause: error,
  })
}

/**
 * What the retry layer throws is what the caller gets, except for a payment error, which comes
 * out of the RPC error viem's retry layer puts around it (for its code).
 */
function unwrap(error: unknown) {
  if (error instanceof BaseError) {
    const payment = error.walk(isPaymentError)
    if (payment) return payment
  }
  return error
}
