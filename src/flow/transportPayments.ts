import { InvalidPaymentTimeoutError } from '../errors.js'
import { defaultMaxAmount } from '../internal/defaults.js'
import type { PaymentProvider } from '../providers/PaymentProvider.js'
import type { PaymentHooks } from './hooks.js'
import { createSpendingPolicy, type SpendingPolicyConfig } from './policy.js'

/** The payment options every paying transport takes (`mppHttp`, `mppWebSocket`). */
export type TransportPaymentConfig = SpendingPolicyConfig &
  PaymentHooks & {
    provider?: PaymentProvider | undefined
    paymentTimeout?: number | undefined
  }

/** The longest delay a timer can hold (2^31 - 1 ms); a longer one fires at once. */
const maxTimeout = 2_147_483_647

/**
 * A transport's payment options, checked and made into what its flows share: the spending policy
 * (the transport's budget; the default provider capped unless `maxAmount` is given), the hooks,
 * and `paymentTimeout` (anything but a number from 0 to 2^31 - 1 ms throws
 * `InvalidPaymentTimeoutError` before anything can be signed: a timer would fire at once); and
 * `rest`, the transport's other options.
 *
 * @example
 * ```ts
 * const { policy, hooks, paymentTimeout, rest: httpConfig } = transportPayments(config)
 * ```
 */
export function transportPayments<const config extends TransportPaymentConfig>({
  provider,
  maxAmount,
  budget,
  onPaymentRequired,
  onChallenge,
  onPaymentSent,
  onPaymentRejected,
  onReceipt,
  paymentTimeout = 120_000,
  ...rest
}: config) {
  if (typeof paymentTimeout !== 'number' || !(paymentTimeout >= 0 && paymentTimeout <= maxTimeout))
    throw new InvalidPaymentTimeoutError({ paymentTimeout })
  const policy = createSpendingPolicy({
    maxAmount: maxAmount ?? (provider ? undefined : defaultMaxAmount),
    budget,
    onPaymentRequired,
  })
  const hooks: PaymentHooks = { onChallenge, onPaymentSent, onPaymentRejected, onReceipt }
  return { provider, policy, hooks, paymentTimeout, rest }
}
