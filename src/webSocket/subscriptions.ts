import { TimeoutError } from 'viem'
import type { SocketRpcClient } from 'viem/utils'

/** viem's socket client, as `webSocket()`'s `getRpcClient()` resolves it. */
export type RpcClient = SocketRpcClient<WebSocket>

/** A JSON-RPC message from the socket: an answer (`id`) or a notification (`method`). */
export type RpcMessage = {
  id?: unknown
  method?: string
  result?: unknown
  error?: { code: number; message: string; data?: unknown }
  params?: unknown
}

/** What `subscribe` takes: viem's `WebSocketTransportSubscribe` parameters. */
export type SubscribeParameters = {
  params: readonly unknown[]
  onData: (data: unknown) => void
  onError?: ((error: unknown) => void) | undefined
}

/**
 * One exchange on the socket, paid when the server asks (or before, for a session): its final
 * answer. `listener` names the subscription an `eth_subscribe` is for; `refused`, an answer
 * already received, paid at once if it is a challenge (else returned); `askFirst` sends unpaid
 * first even when a session could pay ahead (for what servers serve free).
 */
export type Exchange = (
  body: { method: string; params: readonly unknown[] },
  options?: {
    listener?: string | undefined
    refused?: RpcMessage | undefined
    askFirst?: boolean | undefined
  },
) => Promise<RpcMessage>

export type PaidSubscriptionsConfig = {
  /** Sends a request and pays for it when asked (or before, for a session). */
  exchange: Exchange
  /** How long the answer to an `eth_subscribe` may take. */
  timeout: number
  /** The endpoint, for errors. */
  url: string
}

const subscribe = 'eth_subscribe'

/**
 * `eth_subscribe` for a paying socket: the subscription is paid once, when the server asks (or
 * with the session's next voucher), and its notifications are never paid (the draft forbids it).
 * What viem keeps to re-subscribe after a reconnect is the request **without** its credential:
 * a re-subscription pays again only if the server asks again — a credential is never replayed.
 *
 * Each subscription is a listener known by a key (the id of the flow's request), so the socket
 * fetch sends a paid `eth_subscribe` with the listener's callbacks rather than as a one-off
 * request: its notifications reach `onData` from the first one on.
 *
 * @example
 * ```ts
 * const subscriptions = paidSubscriptions({ exchange, timeout, url })
 * const { unsubscribe } = await subscriptions.subscribe({ params: ['newHeads'], onData })
 * ```
 */
export function paidSubscriptions(config: PaidSubscriptionsConfig) {
  const listeners = new Map<string, Listener>()
  let count = 0

  return {
    /** The listener a request of the flow belongs to, by the request's id. */
    listenerOf(key: unknown) {
      return typeof key === 'string' ? listeners.get(key) : undefined
    },
    /** Moves every live subscription to `rpcClient`, which replaced a dropped client. */
    moveTo(rpcClient: RpcClient) {
      for (const listener of listeners.values()) listener.resubscribe(rpcClient)
    },
    /** `transport.subscribe`: resolves once subscribed, as viem's does. */
    async subscribe(parameters: SubscribeParameters) {
      const key = `mpp-subscription-${++count}`
      const listener = listen(key, parameters, config, () => listeners.delete(key))
      listeners.set(key, listener)
      try {
        const answer = await config.exchange(
          { method: subscribe, params: parameters.params },
          { listener: key },
        )
        if (answer.error) throw answer.error
      } catch (error) {
        listener.abandon()
        parameters.onError?.(error)
        throw error
      }
      return listener.subscription
    },
  }
}

/** One subscription of a paying socket: its callbacks, its id once subscribed, and its ending. */
type Listener = ReturnType<typeof listen>

/**
 * The listener of subscription `key`: it takes the `eth_subscribe`'s answer and every
 * notification for it, on whichever client it lives, and keeps the request viem re-sends after a
 * reconnect. `onClosed` forgets it once unsubscribed.
 */
function listen(
  key: string,
  { params, onData, onError }: SubscribeParameters,
  { exchange, timeout, url }: PaidSubscriptionsConfig,
  onClosed: () => void,
) {
  const body = { method: subscribe, params }
  let subscriptionId: string | undefined
  let closed = false
  /** The caller of the `eth_subscribe` on the wire, waiting for its answer. */
  let pending: { resolve: (answer: RpcMessage) => void; reject: (error: Error) => void } | undefined

  const unsubscribe = async () => {
    closed = true
    onClosed()
    settle((answer) => answer.reject(new Error('Unsubscribed.')))
    if (subscriptionId === undefined) return undefined
    // Ending a subscription is commonly free: a voucher sent ahead for it could be one the
    // server never counts. Paid only if the server asks. It never rejects, as viem's does not
    // (its watchers call it without waiting): nothing reaches `onData` after it either way.
    return exchange(
      { method: 'eth_unsubscribe', params: [subscriptionId] },
      { askFirst: true },
    ).catch(() => undefined)
  }

  /** Every answer and notification for this subscription, on whichever client it lives. */
  const onMessage = (rpcClient: RpcClient) => (message: RpcMessage) => {
    if (message.method === 'eth_subscription') {
      if (!closed) onData(message.params)
      return
    }
    if (typeof message.result === 'string') {
      subscriptionId = message.result
      // Kept for viem's re-subscription on reconnect: the request without its credential.
      rpcClient.subscriptions.set(message.result, {
        onResponse: onMessage(rpcClient),
        onError: onSocketError,
        body,
      })
      // Subscribed after the caller gave up (a timeout, a failed payment): nobody listens.
      if (closed) void unsubscribe()
    }
    if (pending) return settle((answer) => answer.resolve(message))
    // A re-subscription after a reconnect was answered: done, or paid if the server asks.
    if (message.error && !closed) void resubscribed(message)
  }

  const onSocketError = (error?: Error | Event) => {
    const reason = error instanceof Error ? error : new Error('WebSocket error')
    if (pending) return settle((answer) => answer.reject(reason))
    onError?.(reason)
  }

  const settle = (how: (answer: NonNullable<typeof pending>) => void) => {
    const answer = pending
    pending = undefined
    if (answer) how(answer)
  }

  /** A re-subscription refused: paid through the flow when it is a challenge, else an error. */
  const resubscribed = async (refused: RpcMessage) => {
    try {
      const answer = await exchange(body, { listener: key, refused })
      if (answer.error) onError?.(answer.error)
    } catch (error) {
      onError?.(error)
    }
  }

  return {
    /** Sends `eth_subscribe` (with its credential, if any) on `rpcClient`: the answer. */
    send(rpcClient: RpcClient, request: object): Promise<RpcMessage> {
      return new Promise((resolve, reject) => {
        // The error shows the request without its credential.
        const timer = setTimeout(
          () => settle((answer) => answer.reject(new TimeoutError({ body, url }))),
          timeout,
        )
        const done =
          <value>(then: (value: value) => void) =>
          (value: value) => {
            clearTimeout(timer)
            then(value)
          }
        pending = { resolve: done(resolve), reject: done(reject) }
        rpcClient.request({
          body: request as never,
          onResponse: onMessage(rpcClient),
          onError: onSocketError,
        })
      })
    },
    /** Subscribes again on a client that replaced a dropped one, as viem's reconnect does. */
    resubscribe(rpcClient: RpcClient) {
      if (closed || subscriptionId === undefined) return
      rpcClient.request({ body, onResponse: onMessage(rpcClient), onError: onSocketError })
    },
    /** Ends a subscription its caller gave up on; one that comes to be is unsubscribed. */
    abandon: () => void unsubscribe(),
    subscription: {
      get subscriptionId() {
        return subscriptionId
      },
      unsubscribe,
    },
  }
}
