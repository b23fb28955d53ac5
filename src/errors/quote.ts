import { BaseError } from './base.js'

export type InvalidQuoteErrorType = InvalidQuoteError & { name: 'InvalidQuoteError' }

/**
 * A payment provider's `prepare()` returned a quote the spending policy cannot judge: `field` is
 * missing or of the wrong type (a custom provider written before the field existed, for
 * instance). Nothing was signed; the request fails with it.
 *
 * @example
 * ```ts
 * import { InvalidQuoteError } from 'viem-mpp'
 *
 * if (error instanceof InvalidQuoteError) console.log(error.field) // 'fee'
 * ```
 */
export class InvalidQuoteError extends BaseError {
  /** The quote's field that is missing or invalid, as a path (`fee`, `transfers.0.amount`). */
  readonly field: string

  constructor({ field, expected }: { field: string; expected: string }) {
    super(`The payment provider's quote has no valid \`${field}\`: ${expected}.`, {
      metaMessages: [
        "A PaymentProvider's prepare() returns every field of PaymentQuote (see its documentation).",
      ],
      name: 'InvalidQuoteError',
    })
    this.field = field
  }
}
