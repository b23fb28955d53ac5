import {
  createTransport,
  type Transport,
  type WebSocketTransport,
  type WebSocketTransportConfig,
  webSocket,
} from 'viem'
import { defaultProvider } from './flow/defaultProvider.js'
import { createPaymentFlow } from './flow/paymentFlow.js'
import { credentialPolicy } from './flow/plainHttp.js'
import { type TransportPaymentConfig, transportPayments } from './flow/transportPayments.js'
import { inBandSignalling } from './internal/inBand.js'
import { socketExchange } from './internal/socketFetch.js'
import { paidMessages } from './webSocket/paidMessages.js'
import { paidSubscriptions } from './webSocket/subscriptions.js'

export type MppWebSocketTransportConfig = WebSocketTransportConfig &
  TransportPaymentConfig & {
    /**
     * Plain `ws://` origins (`ws://host:port`) credentials may go to all the same, as
     * `mppHttp`'s `dangerouslyPayOverPlainHttp` for `http://`. Loopback always may.
     * @default []
     */
    dangerouslyPayOverPlainWs?: readonly string[] | undefined
  }

export type MppWebSocketTransport = Transport<
  'webSocket',
  WebSocketTransport extends Transport<'webSocket', infer value> ? value : never
>

/**
 * viem's `webSocket()` that pays in-band JSON-RPC payment challenges (draft-payment-transport-
 * mcp-00): an answer whose error is `-32042` (or `-32043`) is paid through the same flow as
 * `mppHttp`'s 402 — selection, `maxAmount`, `budget`, `onPaymentRequired`, providers, two-phase
 * commit, typed errors — and the request is sent again on the socket with the credential in its
 * root-level `_meta`; the receipt is read from the answer's `_meta`. A session pays before the
 * server asks once it has paid: one message per paid call. Without a `-32042`, it is
 * `webSocket()`: the same results, errors, retries and subscriptions.
 *
 * @example
 * ```ts
 * import { createPublicClient } from 'viem'
 * import { tempo } from 'viem/chains'
 * import { mppWebSocket, session } from 'viem-mpp'
 *
 * const client = createPublicClient({
 *   chain: tempo,
 *   transport: mppWebSocket('wss://rpc.example.com', { provider: session({ account, client: chainClient }) }),
 * })
 * ```
 */
export function mppWebSocket(
  url?: string | undefined,
  config: MppWebSocketTransportConfig = {},
): MppWebSocketTransport {
  const { dangerouslyPayOverPlainWs = [], ...options } = config
  const { provider, rest: socketConfig, ...payments } = transportPayments(options)
  const plainHttp = credentialPolicy(dangerouslyPayOverPlainWs.map(asHttpUrl))
  const mayCarryCredentials = (target: URL) => plainHttp(new URL(asHttpUrl(target.href)))
  const socket = webSocket(url, socketConfig)

  return (parameters) => {
    const inner = socket(parameters)
    const { chain } = parameters
    const endpoint = url || chain?.rpcUrls.default.webSocket?.[0] || ''
    const timeout = inner.config.timeout ?? 10_000
    /**
     * viem's socket client, never one whose socket was dropped and not (yet) replaced: a paid
     * message goes on a fresh connection rather than into a dead one (viem keeps the closed
     * client cached until it reconnects); the subscriptions move with it.
     */
    const liveClient = async () => {
      const socketClient = () => (inner.value as NonNullable<typeof inner.value>).getRpcClient()
      const rpcClient = await socketClient()
      if (rpcClient.socket.readyState <= 1) return rpcClient
      rpcClient.close()
      const fresh = await socketClient()
      subscriptions.moveTo(fresh)
      return fresh
    }
    /** The flow's requests as messages on the socket, a subscription's with its listener. */
    const overSocket = async (_input: string | URL | Request, init: RequestInit = {}) =>
      socketExchange(endpoint, init, async (body, id) => {
        const rpcClient = await liveClient()
        const listener = subscriptions.listenerOf(id)
        return listener
          ? listener.send(rpcClient, body)
          : rpcClient.requestAsync({ body: body as never, timeout })
      })
    const flow = createPaymentFlow({
      getProvider: provider ? async () => provider : defaultProvider(chain, endpoint),
      policy: payments.policy,
      fetchFn: inBandSignalling({ always: true }).fetch(overSocket),
      chainId: chain?.id,
      paymentTimeout: payments.paymentTimeout,
      mayCarryCredentials,
      ...payments.hooks,
    })

    const { request, exchange } = paidMessages({
      flow,
      endpoint,
      overSocket,
      inner,
      methods: socketConfig.methods,
    })
    const subscriptions = paidSubscriptions({ exchange, timeout, url: endpoint })

    const transport = createTransport(
      {
        key: socketConfig.key ?? 'mppWebSocket',
        name: socketConfig.name ?? 'Paid WebSocket JSON-RPC',
        methods: socketConfig.methods,
        retryCount: 0,
        timeout,
        type: 'webSocket',
        request,
      },
      { ...inner.value, subscribe: subscriptions.subscribe } as NonNullable<typeof inner.value>,
    )
    return { ...transport, request }
  }
}

/** `ws://` as `http://`, `wss://` as `https://`: the same origin rules apply. */
function asHttpUrl(value: string) {
  return value.replace(/^ws(s?):/i, 'http$1:')
}
