/**
 * The upstream a paid RPC forwards to: its HTTP (credentials in the URL made a Basic header), its
 * WebSocket, and the check that it answers JSON-RPC before the server starts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { BaseError } from '../../errors.js'
import { redactUrl } from '../../internal/redactUrl.js'

export async function assertReachable(upstream: Upstream) {
  try {
    const response = await upstream.post(
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      AbortSignal.timeout(5_000),
    )
    await response.json()
  } catch {
    // The cause is left out on purpose: its message can hold the upstream's full URL.
    throw new PaidRpcStartError(
      `The upstream at ${redactUrl(upstream.url)} does not answer JSON-RPC.`,
      { metaMessages: ['Start the node first (e.g. `startLocalnet()`), or check `upstream`.'] },
    )
  }
}

export type Upstream = ReturnType<typeof upstreamOf>

/**
 * POSTs to a JSON-RPC URL. Credentials in the URL become a Basic `Authorization` header, since
 * `fetch` refuses URLs that carry them.
 */
export function upstreamOf(url: string) {
  const parsed = new URL(url)
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (parsed.username || parsed.password) {
    const credentials = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`
    headers.authorization = `Basic ${btoa(credentials)}`
    parsed.username = ''
    parsed.password = ''
  }
  const target = parsed.href
  return {
    url,
    post: (body: string, signal?: AbortSignal) =>
      fetch(target, { method: 'POST', headers, body, signal }),
  }
}

/**
 * The upstream's answer to `body`, read whole into a JSON response with its status, ready to be
 * sent on (with a receipt, by a paid server).
 *
 * @example
 * ```ts
 * await NodeListener.sendResponse(res, result.withReceipt(await forwarded(upstream, body)))
 * ```
 */
export async function forwarded(upstream: Upstream, body: string): Promise<Response> {
  const response = await upstream.post(body)
  return new Response(await response.text(), {
    status: response.status,
    headers: { 'content-type': 'application/json' },
  })
}

/**
 * Answers a request that failed with a `502` whose body says why, unless an answer has begun.
 *
 * @example
 * ```ts
 * try { await answer(req, res) } catch (error) { answerBadGateway(res, error) }
 * ```
 */
export function answerBadGateway(res: ServerResponse, error: unknown) {
  if (!res.headersSent)
    res
      .writeHead(502, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: (error as Error).message }))
}

/** The body of `req`, as text. */
export async function bodyOf(req: IncomingMessage) {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** The upstream's WebSocket URL: anvil (and most nodes) serve it on the HTTP port. */
export function socketUrlOf(upstream: string) {
  return upstream.replace(/^http(s?):/i, 'ws$1:')
}

export type PaidRpcStartErrorType = PaidRpcStartError & { name: 'PaidRpcStartError' }

export class PaidRpcStartError extends BaseError {
  constructor(
    shortMessage: string,
    { cause, metaMessages }: { cause?: Error; metaMessages?: string[] },
  ) {
    super(shortMessage, { cause, metaMessages, name: 'PaidRpcStartError' })
  }
}
