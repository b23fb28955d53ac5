/**
 * The errors of viem-mpp, one module per concept under `errors/`: every one extends
 * {@link BaseError} (viem's, labelled with this package's version).
 */
export { BaseError } from './errors/base.js'
export {
  InvalidPaymentTimeoutError,
  type InvalidPaymentTimeoutErrorType,
  InvalidPlainHttpOriginError,
  type InvalidPlainHttpOriginErrorType,
} from './errors/options.js'
export { isPaymentError, type PaymentError } from './errors/paymentError.js'
export { PaymentFailedError, type PaymentFailedErrorType } from './errors/paymentFailed.js'
export { PaymentRefusedError, type PaymentRefusedErrorType } from './errors/paymentRefused.js'
export { PaymentRequiredError, type PaymentRequiredErrorType } from './errors/paymentRequired.js'
export { InvalidQuoteError, type InvalidQuoteErrorType } from './errors/quote.js'
export { RecoveredChannelError, type RecoveredChannelErrorType } from './errors/recoveredChannel.js'
