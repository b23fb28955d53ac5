import { RpcRequestError, type TransportConfig, type WebSocketTransport } from 'viem'
import { buildRequest } from 'viem/utils'
import type { createPaymentFlow } from '../flow/paymentFlow.js'
import { inBandChallengeOf } from '../internal/inBand.js'
import type { Exchange, RpcMessage } from './subscriptions.js'

type Flow = ReturnType<typeof createPaymentFlow>
type SocketTransport = ReturnType<WebSocketTransport>

export type PaidMessagesConfig = {
  /** The payment flow, whose `fetch` sends on the socket. */
  flow: Flow
  /** The endpoint's URL: the flow's origin, and the errors'. */
  endpoint: string
  /** Sends a flow request on the socket (see `socketExchange`): the answer as a response. */
  overSocket: (input: string, init: RequestInit) => Promise<Response>
  /** `webSocket()`'s own transport, for unpaid calls. */
  inner: SocketTransport
  /** viem's method filters, for the paid calls' typed errors. */
  methods: TransportConfig['methods']
}

const json = { 'content-type': 'application/json' }

/**
 * The paid messages of a socket: every request and every subscription's exchange goes the same
 * way — with the session's next voucher when it pays before being asked, else unpaid, and paid
 * through the flow if the answer is an in-band challenge (`-32042`), sent again with the
 * credential. `request` is the transport's: unpaid calls are `webSocket()`'s own (its retries,
 * its typed errors), a paid one is made once, since it may have been taken.
 *
 * @example
 * ```ts
 * const { request, exchange } = paidMessages({ flow, endpoint, overSocket, inner, methods })
 * ```
 */
export function paidMessages({ flow, endpoint, overSocket, inner, methods }: PaidMessagesConfig): {
  request: SocketTransport['request']
  exchange: Exchange
} {
  /** The message paid before the server asks, when a session pays ahead; else `undefined`. */
  const paidAhead = (body: RpcBody) =>
    flow.presending ? flow.presend(endpoint, messageInit(body)) : undefined

  const exchange: Exchange = async ({ method, params }, { listener, refused, askFirst } = {}) => {
    const body = { jsonrpc: '2.0', id: listener ?? 0, method, params }
    const ahead = refused || askFirst ? undefined : paidAhead(body)
    if (ahead) return messageOf(ahead)
    const init = messageInit(body)
    const answer = refused ?? (await messageOf(overSocket(endpoint, init)))
    const challenge =
      answer.error &&
      inBandChallengeOf(new RpcRequestError({ body, error: answer.error, url: endpoint }))
    return challenge ? messageOf(flow.pay(endpoint, init, challenge)) : answer
  }

  // The unpaid path is `webSocket()`'s own request and nothing more: no message is built for the
  // flow unless a session pays ahead or the server asks.
  const request = (async (args, options) => {
    const { method, params } = args as { method: string; params?: unknown }
    const body = { jsonrpc: '2.0', id: 0, method, params }
    const ahead = paidAhead(body)
    if (ahead) return resultOf(args, body, ahead)
    try {
      return await inner.request(args as never, options)
    } catch (error) {
      const challenge = inBandChallengeOf(error)
      if (!challenge) throw error
      return resultOf(args, body, flow.pay(endpoint, messageInit(body), challenge))
    }
  }) as SocketTransport['request']

  /** A paid call's result, its JSON-RPC error typed as viem types it; never retried. */
  const resultOf = (args: object, body: RpcBody, paid: Promise<Response>) => {
    const result = async () => {
      const answer = await messageOf(paid)
      if (answer.error) throw new RpcRequestError({ body, error: answer.error, url: endpoint })
      return answer.result
    }
    return buildRequest(result as never, { methods, retryCount: 0 })(args as never)
  }

  return { request, exchange }
}

/** A JSON-RPC request's body. */
type RpcBody = { [key: string]: unknown }

/** A JSON-RPC message sent as a flow request. */
function messageInit(body: RpcBody): RequestInit {
  return { method: 'POST', headers: json, body: JSON.stringify(body) }
}

/** The JSON-RPC message a flow response carries. */
async function messageOf(response: Promise<Response>) {
  return (await (await response).json()) as RpcMessage
}
