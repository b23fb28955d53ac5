import { WebSocketRequestError } from 'viem'
import { getWebSocketRpcClient } from 'viem/utils'
import { inBandSignalling } from './inBand.js'
import { redactUrl } from './redactUrl.js'

/** Whether `url` is a WebSocket endpoint (`ws://`, `wss://`). */
export const isSocketUrl = (url: string) => /^wss?:/i.test(url)

/**
 * The JSON-RPC request of `init` sent as a message on a socket by `send` (which gives it an id
 * of the socket's), its answer as a JSON `200` under the request's own id: what the in-band
 * codec reads. A socket that fails rejects with its event: a typed error instead, without the
 * request (its credential).
 *
 * @example
 * ```ts
 * const response = await socketExchange(url, init, (body) => rpcClient.requestAsync({ body }))
 * ```
 */
export async function socketExchange(
  url: string,
  init: RequestInit,
  send: (body: { [key: string]: unknown }, id: unknown) => Promise<unknown>,
): Promise<Response> {
  const { id, ...body } = JSON.parse(String(init.body)) as { id?: unknown }
  const answer = await send(body, id).catch((error: unknown) => {
    if (error instanceof Error) throw error
    throw new WebSocketRequestError({ url: redactUrl(url), details: 'The socket failed.' })
  })
  return new Response(JSON.stringify({ ...(answer as object), id }), {
    status: 200,
    headers: { 'content-type': 'application/json' },
  })
}

/**
 * A fetch for a one-off exchange with an in-band server on a WebSocket (closing a channel bought
 * over a socket, from a later visit): each request goes as one JSON-RPC message on a connection
 * of its own, closed after the answer, through the in-band codec — a `-32042` reads as a `402`
 * and a credential goes in `_meta`.
 *
 * @example
 * ```ts
 * const send = isSocketUrl(url) ? socketFetch({ timeout }) : fetch
 * const response = await send(url, { method: 'POST', headers })
 * ```
 */
export function socketFetch({ timeout }: { timeout: number }) {
  return inBandSignalling({ always: true }).fetch(async (input, init = {}) => {
    const url = input instanceof Request ? input.url : String(input)
    const rpcClient = await getWebSocketRpcClient(url, { reconnect: false, keepAlive: false })
    try {
      return await socketExchange(url, init, (body) =>
        rpcClient.requestAsync({ body: body as never, timeout }),
      )
    } finally {
      rpcClient.close()
    }
  })
}
