import type { Challenge, Receipt } from 'mppx'
import type { Problem } from '../Problem.js'
import type { PaymentEvent } from './policy.js'

/** What a transport tells its caller along the payment flow (observability only). */
export type PaymentHooks = {
  /** A 402 arrived; `challenges` are all the Payment challenges it decoded to. */
  onChallenge?:
    | ((event: { challenges: readonly Challenge.Challenge[]; origin: string }) => unknown)
    | undefined
  /** A credential is about to be sent. */
  onPaymentSent?: ((event: PaymentEvent) => unknown) | undefined
  /** The server rejected a payment (402 or 410). */
  onPaymentRejected?:
    | ((event: PaymentEvent & { status: number; problem: Problem | undefined }) => unknown)
    | undefined
  /** The server accepted a payment; `receipt` is its decoded `Payment-Receipt`, if it sent one. */
  onReceipt?:
    | ((event: PaymentEvent & { receipt: Receipt.Receipt | undefined }) => unknown)
    | undefined
}

/** Calls an observability hook; its failure, sync or async, must not break a payment. */
export function notify<event>(hook: ((event: event) => unknown) | undefined, event: event) {
  if (!hook) return
  try {
    Promise.resolve(hook(event)).catch(() => {})
  } catch {}
}
