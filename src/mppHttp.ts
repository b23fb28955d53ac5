import {
  createTransport,
  type EIP1193RequestFn,
  type HttpTransportConfig,
  type RpcSchema,
  type Transport,
} from 'viem'
import type { PaymentHooks } from './flow/hooks.js'
import { credentialPolicy } from './flow/plainHttp.js'
import type { SpendingPolicyConfig } from './flow/policy.js'
import { transportPayments } from './flow/transportPayments.js'
import { createPaidCalls, isAbortError } from './http/paidCalls.js'
import { createSender, type SenderContext } from './http/sender.js'
import { cached } from './internal/cached.js'
import { inBandSignalling } from './internal/inBand.js'
import type { Call } from './internal/inFlightCalls.js'
import { paidTransportMarker } from './internal/paidTransportMarker.js'
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
  // A call travels through three layers:
  //   1. viem's retry layer (createTransport, with the caller's retryCount), around
  //   2. `attempt`, which knows whether its HTTP exchange was paid for (then it is final), around
  //   3. an inner http()'s own request function (a sender's), with viem's timeout, which
  //      batches, sends and parses each attempt once, and whose fetch hands a 402 to the flow.
  const paidCalls = createPaidCalls()
  // Looked up at call time, as http() does, so that a fetch patched later (msw, tests) is used.
  const fetchFn: NonNullable<HttpTransportConfig['fetchFn']> = (input, init) =>
    (fetchFn_ ?? fetch)(input, init)
  // In-band JSON-RPC signalling (-32042 in a 200) reaches the flow as the 402 it stands for. The
  // flow's own requests are read for it; unpaid ones only when a batch (a single call's -32042
  // is caught once viem has read it: the unpaid path reads nothing twice).
  const inBand = inBandSignalling()
  const context: SenderContext = {
    url,
    httpConfig,
    provider,
    policy,
    hooks,
    paymentTimeout,
    mayCarryCredentials: credentialPolicy(dangerouslyPayOverPlainHttp),
    paidCalls,
    inBand,
    flowFetch: inBand.fetch(fetchFn),
    unpaidFetch: inBand.fetch(fetchFn, { inspect: ({ body }) => isBatch(body) }),
  }
  // Made once per chain and timeout, so that batches are shared by every client built on this
  // transport (viem's `fallback()` builds its transports anew for each request).
  const senders = new Map<string, ReturnType<typeof createSender>>()

  return (parameters) => {
    const timeout = parameters.timeout ?? httpConfig.timeout ?? 10_000
    const { chain } = parameters
    const { send, value, origin } = cached(senders, `${chain?.id}:${timeout}`, () =>
      createSender(context, chain, timeout),
    )
    // `fallback()` makes its transports with `retryCount: 0`, and moves on to the next one past
    // any error it does not see as final: there, a paid call's error comes inside a final one.
    const inFallback = parameters.retryCount === 0
    const { inFlight } = paidCalls

    const attempt = (async (args, options) => {
      const current = inFlight.begin(args as Call)
      try {
        return await send(args as never, options)
      } catch (error) {
        const failure = paidCalls.takeFailure(error)
        if (failure) throw failure
        if (!current.paid) throw error
        throw await paidCalls.paidCallFailure(error, args as Call, origin)
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

    return {
      ...transport,
      request: ((args, options) => {
        const since = inFlight.sequence
        return transport
          .request(args as never, options)
          .catch((error: unknown) =>
            isAbortError(error)
              ? paidCalls.afterAbort(error, args as Call, since, origin)
              : paidCalls.unwrap(error, inFallback),
          )
      }) as typeof transport.request,
    }
  }
}

/** Whether a request body is a JSON-RPC batch. */
function isBatch(body: RequestInit['body']) {
  return typeof body === 'string' && body.trimStart().startsWith('[')
}
