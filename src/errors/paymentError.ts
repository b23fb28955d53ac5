import { PaymentFailedError } from './paymentFailed.js'
import { PaymentRefusedError } from './paymentRefused.js'
import { PaymentRequiredError } from './paymentRequired.js'

/** Any error this package raises for a payment. */
export type PaymentError = PaymentRequiredError | PaymentRefusedError | PaymentFailedError

/** Whether `error` is one of this package's payment errors. */
export function isPaymentError(error: unknown): error is PaymentError {
  return (
    error instanceof PaymentRequiredError ||
    error instanceof PaymentRefusedError ||
    error instanceof PaymentFailedError
  )
}
