import { isAddress } from 'viem'
import { z } from 'zod'
import { InvalidQuoteError } from '../errors.js'
import { redactErrorInPlace } from '../internal/redactUrl.js'
import type { PaymentQuote } from '../providers/PaymentProvider.js'

const amount = z.bigint().nonnegative()
const address = z.string().refine((value) => isAddress(value, { strict: false }))

/** What the spending policy relies on in a quote. */
const quoteSchema = z.object({
  method: z.string(),
  intent: z.string(),
  amount,
  deposit: amount,
  fee: amount,
  feeToken: address.optional(),
  currency: address,
  recipient: address,
  transfers: z.array(
    z.object({
      recipient: address,
      amount,
      memo: z.string().optional(),
    }),
  ),
  chainId: z.number().int().optional(),
})

/** What each kind of field must be, for the error. */
const expectations: Record<string, string> = {
  bigint: 'a non-negative bigint in base units',
  string: 'a string',
  number: 'a number',
  array: 'an array of transfers',
  object: 'an object',
}

/**
 * Checks the quote a provider's `prepare()` returned before the spending policy judges it: a
 * provider that omits a field (`fee`, added after the first providers were written) gets an
 * {@link InvalidQuoteError} naming it, not a `TypeError` deep in the policy.
 *
 * @example
 * ```ts
 * const quote = checkQuote(prepared.quote)
 * ```
 */
export function checkQuote(quote: PaymentQuote): PaymentQuote {
  const parsed = quoteSchema.safeParse(quote)
  if (parsed.success) return quote
  const [issue] = parsed.error.issues
  const field = issue?.path.join('.') || 'quote'
  const expected =
    issue?.code === 'invalid_type'
      ? (expectations[issue.expected] ?? `a ${issue.expected}`)
      : (issue?.message ?? 'invalid')
  // Kept as it is, class included, for the caller to find it under the flow's error.
  throw redactErrorInPlace(new InvalidQuoteError({ field, expected }))
}
