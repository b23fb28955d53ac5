import { Challenge } from 'mppx'
import { decodeChallenges } from '../../internal/wwwAuthenticate.js'
import { type ParsedSessionChallenge, parseSessionRequest } from '../../reserve/sessionRequest.js'

/**
 * Where a channel's management requests (top-up, close, take-up probes) go, and how: to the paid
 * request's URL, with its headers, through the transport's fetch (redirects within the origin
 * only). Kept in memory only: the URL may hold an API key.
 */
export type Endpoint = {
  url: string
  headers: Headers
  fetch: (url: string, init: RequestInit) => Promise<Response>
}

/**
 * Sends a management request: the endpoint's URL, without a body, carrying `credential` (in the
 * header its challenge names) and `extra` headers.
 *
 * @example
 * ```ts
 * const answer = await manage(endpoint, { signal, credential: { challenge, authorization } })
 * ```
 */
export function manage(
  endpoint: Endpoint,
  {
    credential,
    extra,
    signal,
  }: {
    credential?: { challenge: Challenge.Challenge; authorization: string } | undefined
    extra?: Record<string, string> | undefined
    signal?: AbortSignal | undefined
  } = {},
): Promise<Response> {
  const headers = new Headers(endpoint.headers)
  headers.delete('content-type')
  headers.delete('content-length')
  for (const [name, value] of Object.entries(extra ?? {})) headers.set(name, value)
  if (credential)
    headers.set(Challenge.credentialHeader(credential.challenge), credential.authorization)
  return endpoint.fetch(endpoint.url, { method: 'POST', headers, signal: signal ?? null })
}

/**
 * The session challenges of a fresh 402 from the endpoint, asking about `channelId` (the
 * `Payment-Session` header, to which a server may answer with the channel's snapshot), that
 * `accepts` keeps.
 *
 * @example
 * ```ts
 * const [challenge] = await sessionChallenges(endpoint, { chainId, channelId, signal })
 * ```
 */
export async function sessionChallenges(
  endpoint: Endpoint,
  {
    chainId,
    channelId,
    accepts,
    signal,
  }: {
    chainId: number
    channelId?: string | undefined
    accepts: (parsed: ParsedSessionChallenge) => boolean
    signal?: AbortSignal | undefined
  },
): Promise<Challenge.Challenge[]> {
  const answer = await manage(endpoint, {
    extra: channelId ? { 'payment-session': channelId } : undefined,
    signal,
  })
  await answer.body?.cancel()
  return decodeChallenges(answer).filter((challenge) => {
    const { request } = parseSessionRequest(challenge, chainId)
    return request !== undefined && accepts({ challenge, request })
  })
}
