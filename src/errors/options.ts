import { redactUrls } from '../internal/redactUrl.js'
import { BaseError } from './base.js'

export type InvalidPaymentTimeoutErrorType = InvalidPaymentTimeoutError & {
  name: 'InvalidPaymentTimeoutError'
}

/**
 * `paymentTimeout` is not a number of milliseconds a timer can hold: it must be from 0 (no time
 * limit) to 2147483647 (about 24.8 days). Thrown when the transport is made, before any request.
 */
export class InvalidPaymentTimeoutError extends BaseError {
  constructor({ paymentTimeout }: { paymentTimeout: unknown }) {
    super('`paymentTimeout` must be a number of milliseconds from 0 (no limit) to 2147483647.', {
      metaMessages: [`Received: ${String(paymentTimeout)}`],
      name: 'InvalidPaymentTimeoutError',
    })
  }
}

export type InvalidPlainHttpOriginErrorType = InvalidPlainHttpOriginError & {
  name: 'InvalidPlainHttpOriginError'
}

/**
 * An entry of `dangerouslyPayOverPlainHttp` is not a plain-http origin (`http://host:port`, no
 * path, no credentials). Thrown when the transport is made, before any request.
 *
 * @example
 * ```ts
 * import { InvalidPlainHttpOriginError, mppHttp } from 'viem-mpp'
 *
 * mppHttp(url, { dangerouslyPayOverPlainHttp: ['10.0.0.5:8545'] }) // throws: no scheme
 * ```
 */
export class InvalidPlainHttpOriginError extends BaseError {
  constructor({ entry }: { entry: string }) {
    super(
      'Each entry of `dangerouslyPayOverPlainHttp` must be an http:// origin (scheme, host and port; no path).',
      {
        metaMessages: [
          `Received: ${redactUrls(String(entry))}`,
          'For example: http://10.0.0.5:8545',
        ],
        name: 'InvalidPlainHttpOriginError',
      },
    )
  }
}
