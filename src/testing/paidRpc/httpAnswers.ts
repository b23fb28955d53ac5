/**
 * How the paid RPC answers a request: over HTTP with a `402` or in-band, and in-band for a
 * WebSocket's messages; each forwarded to the upstream once the gate finds it paid.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Mppx, Request as MppxRequest, NodeListener } from 'mppx/server'
import type { PaidRpcCounters } from './counters.js'
import type { PaymentGate } from './gate.js'
import { inBandAnswerer } from './inband.js'
import { answerBadGateway, bodyOf, forwarded, type Upstream } from './upstream.js'
import { socketMethods } from './upstreamSocket.js'

/** What answering a paid request needs, whichever way it came. */
export type PaidRpcState = {
  /** Verifies payments: a request's 402, or its receipt. */
  gate: PaymentGate
  /** Where paid requests are forwarded. */
  upstream: Upstream
  /** What the server has seen, for tests. */
  counters: PaidRpcCounters
}

export type HttpListenerConfig = PaidRpcState & {
  /** The origin allowed to call from a browser page, or none (no CORS headers). */
  cors: string | undefined
  /** How payment is asked for and answered over HTTP. */
  signalling: 'http402' | 'jsonrpc'
}

/**
 * The HTTP server's request listener: CORS headers first (a preflight is answered, and not
 * counted), then each request counted and answered as `signalling` says.
 *
 * @example
 * ```ts
 * const server = createServer(httpListenerOf({ gate, upstream, counters, cors: '*', signalling: 'http402' }))
 * ```
 */
export function httpListenerOf({
  cors,
  signalling,
  ...state
}: HttpListenerConfig): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const answerInBand = inBandAnswererOf(state)
  return async (req, res) => {
    if (cors && answeredPreflight(cors, req, res)) return
    state.counters.requests++
    if (signalling === 'jsonrpc') return answerInBandHttp(answerInBand, req, res)
    return answerHttp402(state, req, res)
  }
}

/**
 * JSON-RPC messages under in-band signalling: the same gate, its answers as JSON-RPC; a
 * socket's subscriptions forwarded over `overSocket`, the rest over the upstream's HTTP.
 *
 * @example
 * ```ts
 * const answer = inBandAnswererOf({ gate, upstream, counters }, subscriptions.forward)
 * socket.send(JSON.stringify(await answer(text)))
 * ```
 */
export function inBandAnswererOf(
  { gate, upstream, counters }: PaidRpcState,
  overSocket?: (body: string) => Promise<string>,
): (text: string) => Promise<unknown> {
  return inBandAnswerer({
    gate,
    forward: async (body) => {
      const answer =
        overSocket && socketMethods.has((JSON.parse(body) as { method?: unknown }).method)
          ? await overSocket(body)
          : await (await upstream.post(body)).text()
      counters.forwarded++
      return answer
    },
    onChallenge: () => counters.challenges++,
  })
}

/**
 * Sets the CORS headers a browser page needs to read a 402's challenges and a paid answer's
 * receipt, and answers a preflight (`OPTIONS`) itself: `true` when it did, and nothing is left to
 * answer.
 */
function answeredPreflight(cors: string, req: IncomingMessage, res: ServerResponse): boolean {
  res.setHeader('access-control-allow-origin', cors)
  res.setHeader('access-control-expose-headers', 'WWW-Authenticate, Payment-Receipt')
  if (cors !== '*') res.setHeader('vary', 'Origin')
  if (req.method !== 'OPTIONS') return false
  res
    .writeHead(204, {
      'access-control-allow-methods': 'POST',
      'access-control-allow-headers': 'Authorization, Content-Type',
      'access-control-max-age': '600',
    })
    .end()
  return true
}

/**
 * A request under `402` signalling: the gate's challenge while unpaid, mppx's own answer to a
 * session management request, else the upstream's answer with the receipt. A failure is a `502`
 * whose body says why, for the test that meets it.
 */
async function answerHttp402(
  { gate, upstream, counters }: PaidRpcState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    const request = MppxRequest.fromNodeListener(req, res)
    const result = await gate(request)
    if (result.status === 402) {
      counters.challenges++
      return await NodeListener.sendResponse(res, result.challenge)
    }
    const management = managementResponse(result.withReceipt)
    if (management) return await NodeListener.sendResponse(res, management)
    const answer = await forwarded(upstream, await request.text())
    counters.forwarded++
    await NodeListener.sendResponse(res, result.withReceipt(answer))
  } catch (error) {
    answerBadGateway(res, error)
  }
}

/**
 * A request under in-band signalling over HTTP: always a `200` with the JSON-RPC answer (the
 * payment is asked for inside it); a failure is a `502` whose body says why.
 */
async function answerInBandHttp(
  answer: (text: string) => Promise<unknown>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    const body = JSON.stringify(await answer(await bodyOf(req)))
    res.writeHead(200, { 'content-type': 'application/json' }).end(body)
  } catch (error) {
    answerBadGateway(res, error)
  }
}

/**
 * The response mppx produced itself for a session management request (open or voucher without a
 * body, top-up, close); `undefined` for a content request, which the upstream must answer.
 */
function managementResponse(withReceipt: (response?: Response) => Response) {
  try {
    return withReceipt()
  } catch (error) {
    if (Mppx.isMissingReceiptResponseError(error)) return undefined
    throw error
  }
}
