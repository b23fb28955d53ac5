import type { Challenge } from 'mppx'
import { PaymentRefusedError } from '../errors.js'
import { maxOf } from '../internal/bigint.js'
import { raceSignal } from '../internal/signal.js'
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
  /**
   * The most one payment may cost, in base units: its `amount` (every transfer, splits
   * included), and its `deposit`.
   */
  maxAmount?: bigint | undefined
  /**
   * The most all payments together may spend, in base units: the sum of their `amount`s and of
   * their most `fee`s (the real fee is not known before the server broadcasts).
   */
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
  /** The payment was (or may have been) taken: its amount and most fee are spent. */
  commit(): void
  /** The payment was not taken: its amount and fee are free again. */
  release(): void
  /**
   * After `commit`: reads the fee the payment really cost (`undefined`: not known, the most fee
   * stays spent), only if there is a budget to give the rest of the most fee back to; a payment
   * the budget would refuse meanwhile waits for the read first.
   */
  feePaid(read: () => Promise<bigint | undefined>): void
}

/** How long a payment the budget would refuse waits for the fees being read of earlier ones. */
const feeReadWait = 5_000

/**
 * The transport's spending rules. Approval reserves the payment's amount and most fee, so that
 * concurrent payments cannot overrun the budget between approval and settlement.
 */
export function createSpendingPolicy({
  maxAmount,
  budget,
  onPaymentRequired,
}: SpendingPolicyConfig) {
  let spent = 0n
  let reserved = 0n
  /** Fees being read after their payments: each may give some budget back. */
  const feesPending = new Set<Promise<unknown>>()

  /** What a payment takes from the budget: its amount and its most fee (both in USD units). */
  const spendOf = ({ amount, fee }: PaymentQuote) => amount + fee
  const partsOf = ({ fee, currency, feeToken }: PaymentQuote) => ({ fee, currency, feeToken })
  const fitsBudget = (quote: PaymentQuote) =>
    budget === undefined || spent + reserved + spendOf(quote) <= budget
  /**
   * A payment the budget would refuse waits for the fees being read (up to {@link feeReadWait}):
   * what they give back may make room for it.
   */
  const feesRead = async (quote: PaymentQuote, signal: AbortSignal) => {
    if (fitsBudget(quote) || feesPending.size === 0) return
    const waiting = AbortSignal.any([signal, AbortSignal.timeout(feeReadWait)])
    while (!fitsBudget(quote) && feesPending.size > 0 && !waiting.aborted)
      await raceSignal(Promise.race(feesPending), waiting).catch((error: unknown) => {
        if (signal.aborted) throw error
      })
  }
  const checkBudget = (quote: PaymentQuote) => {
    if (budget !== undefined && !fitsBudget(quote))
      throw new PaymentRefusedError({
        reason: 'budget',
        amount: quote.amount,
        ...partsOf(quote),
        limit: budget - spent - reserved,
      })
  }

  return {
    /**
     * Approves a payment or throws `PaymentRefusedError`; nothing is reserved on refusal. The
     * hook is asked under `signal`: if it aborts first, the hook's late answer is ignored and
     * the abort reason is thrown.
     */
    async approve(event: PaymentEvent, signal: AbortSignal): Promise<Reservation> {
      const { quote } = event
      const { amount, deposit } = quote
      const parts = partsOf(quote)
      const cost = maxOf(amount, deposit)
      if (maxAmount !== undefined && cost > maxAmount)
        throw new PaymentRefusedError({
          reason: 'maxAmount',
          amount: cost,
          ...parts,
          limit: maxAmount,
        })
      // Checked before the hook, so that it is not asked about a payment the budget refuses…
      await feesRead(quote, signal)
      checkBudget(quote)

      let approved: unknown
      try {
        approved = await raceSignal(Promise.resolve(onPaymentRequired?.(event)), signal)
      } catch (error) {
        if (signal.aborted) throw error
        throw new PaymentRefusedError({
          reason: 'onPaymentRequired',
          amount: cost,
          ...parts,
          cause: error as Error,
        })
      }
      if (approved === false)
        throw new PaymentRefusedError({ reason: 'onPaymentRequired', amount: cost, ...parts })

      // …and again after it, when the reservation is made: other payments may have been
      // approved while the hook was thinking.
      checkBudget(quote)
      const spends = spendOf(quote)
      reserved += spends
      let settled = false
      return {
        commit() {
          if (settled) return
          settled = true
          reserved -= spends
          spent += spends
        },
        release() {
          if (settled) return
          settled = true
          reserved -= spends
        },
        feePaid(read) {
          if (budget === undefined || quote.fee === 0n) return
          const reading = Promise.resolve()
            .then(read)
            .then((paid) => {
              if (paid !== undefined && paid >= 0n && paid < quote.fee) spent -= quote.fee - paid
            })
            .catch(() => {})
            .finally(() => feesPending.delete(reading))
          feesPending.add(reading)
        },
      }
    },
  }
}

export type SpendingPolicy = ReturnType<typeof createSpendingPolicy>
