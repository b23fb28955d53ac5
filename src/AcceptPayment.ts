import type { Challenge } from 'mppx'

/**
 * Orders challenges by an `Accept-Payment` value (draft-httpauth-payment-00 §8.4), e.g.
 * `tempo/session, tempo/charge;q=0.5`: highest `q` first, the server's order among equals, the
 * most specific matching range deciding a challenge's `q`. Challenges that no range accepts
 * (or only with `q=0`) are dropped. A missing or unreadable value keeps every challenge.
 */
export function rankByAcceptPayment(
  challenges: readonly Challenge.Challenge[],
  acceptPayment: string | undefined,
): Challenge.Challenge[] {
  const ranges = acceptPayment ? parseRanges(acceptPayment) : undefined
  if (!ranges?.length) return [...challenges]
  return challenges
    .map((challenge, index) => ({ challenge, index, q: weightOf(challenge, ranges) }))
    .filter(({ q }) => q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index)
    .map(({ challenge }) => challenge)
}

type Range = { method: string; intent: string; q: number }

function parseRanges(value: string): Range[] | undefined {
  const ranges: Range[] = []
  for (const part of value.split(',')) {
    const [token = '', ...parameters] = part.split(';').map((piece) => piece.trim())
    const [, method, intent] =
      /^([a-z0-9*][a-z0-9:_*-]*)\/([a-z0-9*][a-z0-9_*-]*)$/i.exec(token) ?? []
    if (!method || !intent) return undefined
    const weight = parameters.find((parameter) => /^q=/i.test(parameter))?.slice(2)
    const q = weight === undefined ? 1 : Number(weight)
    if (!Number.isFinite(q) || q < 0 || q > 1) return undefined
    ranges.push({ method: method.toLowerCase(), intent: intent.toLowerCase(), q })
  }
  return ranges
}

function weightOf(challenge: Challenge.Challenge, ranges: readonly Range[]) {
  let best: { specificity: number; q: number } | undefined
  for (const range of ranges) {
    const method = range.method === '*' || range.method === challenge.method.toLowerCase()
    const intent = range.intent === '*' || range.intent === challenge.intent.toLowerCase()
    if (!method || !intent) continue
    const specificity = Number(range.method !== '*') * 2 + Number(range.intent !== '*')
    if (!best || specificity > best.specificity) best = { specificity, q: range.q }
  }
  return best?.q ?? 0
}
