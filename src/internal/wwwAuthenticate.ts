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
