import type { Challenge } from 'mppx'
import { PaymentRefusedError } from '../errors.js'
import type { PaymentQuote } from '../providers/PaymentProvider.js'

/** A payment, as `onPaymentRequired` and the payment hooks see it. */
export type PaymentEvent = {
  /** The challenge paid. */
  challenge: Challenge.Challenge
  /** Its decoded cost. */
  quote: PaymentQuote
  /** Origin of the endpoint (no path, query or credentials). */
  origin: string
}

export type SpendingPolicyConfig = {
  /** The most one payment may cost (its `amount`, and its `deposit`), in base units. */
  maxAmount?: bigint | undefined
  /** The most all payments together may spend (the sum of their `amount`s), in base units. */
  budget?: bigint | undefined
  /** Asked before each payment; `false` refuses it. */
  onPaymentRequired?:
    | ((
        event: PaymentEvent,
        // biome-ignore lint/suspicious/noConfusingVoidType: a hook that returns nothing approves.
      ) => boolean | void | Promise<boolean | void>)
    | undefined
}

/** A payment's claim on the budget, held from approval until the outcome is known. */
export type Reservation = {
  /** The payment was (or may have been) taken: its amount is spent. */
  commit(): void
  /** The payment was not taken: its amount is free again. */
  release(): void
}

/**
 * The transport's spending rules. Approval reserves the payment's amount, so that concurrent
 * payments cannot overrun the budget between approval and settlement.
 */
export function createSpendingPolicy({
  maxAmount,
  budget,
  onPaymentRequired,
}: SpendingPolicyConfig) {
  let spent = 0n
  let reserved = 0n

  return {
    /** Approves a payment or throws `PaymentRefusedError`; nothing is reserved on refusal. */
    async approve(event: PaymentEvent): Promise<Reservation> {
      const { amount, deposit, currency } = event.quote
      // biome-ignore lint/complexity/useMathMinMax: Math.max does not take bigints.
      const cost = amount > deposit ? amount : deposit
      if (maxAmount !== undefined && cost > maxAmount)
        throw new PaymentRefusedError({
          reason: 'maxAmount',
          amount: cost,
          currency,
          limit: maxAmount,
        })
      if (budget !== undefined && spent + reserved + amount > budget)
        throw new PaymentRefusedError({
          reason: 'budget',
          amount,
          currency,
          limit: budget - spent - reserved,
        })

      reserved += amount
      let settled = false
      const reservation: Reservation = {
        commit() {
          if (settled) return
          settled = true
          reserved -= amount
          spent += amount
        },
        release() {
          if (settled) return
          settled = true
          reserved -= amount
        },
      }

      let approved: unknown
      try {
        approved = await onPaymentRequired?.(event)
      } catch (error) {
        reservation.release()
        throw new PaymentRefusedError({
          reason: 'onPaymentRequired',
          amount: cost,
          currency,
          cause: error as Error,
        })
      }
      if (approved === false) {
        reservation.release()
        throw new PaymentRefusedError({ reason: 'onPaymentRequired', amount: cost, currency })
      }
      return reservation
    },
  }
}

export type SpendingPolicy = ReturnType<typeof createSpendingPolicy>
