import { Challenge } from 'mppx'
import { rankByAcceptPayment } from '../AcceptPayment.js'
import type { PaymentProvider } from '../providers/PaymentProvider.js'

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
function unpayableReason(
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
    return `chain ${String(challengeChainId)}, not the viem client's chain ${chainId}`
  return undefined
}

/** `method/intent`, the way Accept-Payment and error messages name a challenge. */
export function label(challenge: Challenge.Challenge) {
  return `${challenge.method}/${challenge.intent}`
}

/**
 * How far the server's clock may run ahead of this one: a challenge that expires within this
 * margin may really have expired for the server.
 */
export const clockSkew = 5_000

/** Whether `challenge` has expired by this clock, or would have by one `skew` ms ahead. */
export function expiredByOwnClock(challenge: Challenge.Challenge, skew: number) {
  if (challenge.expires === undefined) return false
  return Date.parse(challenge.expires) <= Date.now() + skew
}

/** The challenge to pay, or why none can be paid. Passed-over challenges say why. */
export function choose(
  challenges: readonly Challenge.Challenge[],
  provider: PaymentProvider,
  { chainId, paid }: { chainId: number | undefined; paid: ReadonlySet<string> },
): { challenge?: Challenge.Challenge; passedOver: string[] } {
  const now = Date.now()
  const candidates: Challenge.Challenge[] = []
  const passedOver: string[] = []
  for (const challenge of challenges) {
    const reason =
      unpayableReason(challenge, { chainId, paid, now }) ??
      (provider.supports(challenge)
        ? undefined
        : (provider.unsupportedReason?.(challenge) ?? 'not supported by the provider'))
    if (reason) passedOver.push(`${label(challenge)}: ${reason}`)
    else candidates.push(challenge)
  }
  const ranked = rankByAcceptPayment(candidates, provider.acceptPayment)
  for (const challenge of candidates)
    if (!ranked.includes(challenge))
      passedOver.push(`${label(challenge)}: not in the provider's Accept-Payment`)
  const selected = provider.select ? provider.select(ranked) : ranked[0]
  // A provider's choice is only taken among what may be paid.
  return { challenge: selected && ranked.includes(selected) ? selected : undefined, passedOver }
}
