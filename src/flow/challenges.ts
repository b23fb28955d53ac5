import { Challenge } from 'mppx'

/**
 * Headers past this size are refused whole rather than parsed (a hostile server's memory bomb).
 * mppx allows 16 KiB for one challenge's `request`; this leaves room for a few challenges.
 */
const maxHeaderSize = 32 * 1024

/**
 * The `Payment` challenges of a 402 (or 410) response, decoded by mppx. Challenges that do not
 * decode are dropped, as are repeats of an id already seen, and the challenges of other
 * authentication schemes.
 */
export function decodeChallenges(response: Response): Challenge.Challenge[] {
  const header = response.headers.get('www-authenticate')
  if (!header || header.length > maxHeaderSize) return []
  const challenges = new Map<string, Challenge.Challenge>()
  for (const value of splitSchemes(header)) {
    if (!/^payment\s/i.test(value)) continue
    try {
      const challenge = Challenge.deserialize(value)
      if (!challenges.has(challenge.id)) challenges.set(challenge.id, challenge)
    } catch {}
  }
  return [...challenges.values()]
}

/**
 * Splits a `WWW-Authenticate` value, which may hold several challenges joined by commas (RFC 9110
 * §11.6.1), into one string per challenge. A comma starts a new challenge when the token after it
 * is not followed by `=` (an auth-param) ; commas inside quoted strings do not count.
 */
function splitSchemes(header: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < header.length; i++) {
    const char = header[i]
    if (quoted) {
      if (char === '\\') i++
      else if (char === '"') quoted = false
    } else if (char === '"') quoted = true
    else if (char === ',' && startsScheme(header, i + 1)) {
      parts.push(header.slice(start, i).trim())
      start = i + 1
    }
  }
  parts.push(header.slice(start).trim())
  return parts.filter(Boolean)
}

function startsScheme(header: string, from: number) {
  const match = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)(\s*)(=?)/.exec(header.slice(from, from + 256))
  return !!match && match[3] !== '='
}

/**
 * Headers a credential must never travel in: hop-by-hop and framing headers (RFC 9110 §7.6.1,
 * §8.6), headers that fetch forbids a script to set, and `Content-Type`, which changes what the
 * body means. A credential put there is dropped or breaks the request after the payment is made.
 */
const forbiddenCredentialHeaders = new Set([
  'accept-charset',
  'accept-encoding',
  'access-control-request-headers',
  'access-control-request-method',
  'connection',
  'content-encoding',
  'content-length',
  'content-type',
  'cookie',
  'date',
  'dnt',
  'expect',
  'host',
  'keep-alive',
  'origin',
  'referer',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'via',
])

function isForbiddenCredentialHeader(name: string) {
  const lower = name.toLowerCase()
  return (
    forbiddenCredentialHeaders.has(lower) || lower.startsWith('proxy-') || lower.startsWith('sec-')
  )
}

/** Why a decoded challenge cannot be paid here; `undefined` if it can. */
export function unpayableReason(
  challenge: Challenge.Challenge,
  { chainId, paid, now }: { chainId: number | undefined; paid: ReadonlySet<string>; now: number },
): string | undefined {
  if (paid.has(challenge.id)) return 'already paid'
  const header = Challenge.credentialHeader(challenge)
  if (isForbiddenCredentialHeader(header))
    return `its credential would go in the ${header} header, which cannot carry one`
  if (challenge.expires !== undefined) {
    const expires = Date.parse(challenge.expires)
    if (Number.isNaN(expires) || expires <= now) return 'expired'
  }
  const challengeChainId = (challenge.request.methodDetails as { chainId?: unknown } | undefined)
    ?.chainId
  if (chainId !== undefined && challengeChainId !== undefined && challengeChainId !== chainId)
    return `chain ${String(challengeChainId)}, not the client's ${chainId}`
  return undefined
}

/** `method/intent`, the way Accept-Payment and error messages name a challenge. */
export function label(challenge: Challenge.Challenge) {
  return `${challenge.method}/${challenge.intent}`
}
