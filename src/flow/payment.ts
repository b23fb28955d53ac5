import { Receipt } from 'mppx'
import { raceSignal } from '../internal/signal.js'
import type {
  CommitOutcome,
  PaymentProvider,
  PreparedPayment,
} from '../providers/PaymentProvider.js'
import type { Reservation, SpendingPolicy } from './policy.js'
import { checkQuote } from './quote.js'

/**
 * A prepared, approved payment: the provider's state and the budget's reservation move together,
 * two-phase, so that neither can be settled without the other.
 */
export type Payment = {
  quote: PreparedPayment['quote']
  /** A credential that whoever holds it can settle (see {@link PreparedPayment.bearer}). */
  bearer: boolean
  authorize(): Promise<string>
  /** Accepted, or outcome unknown: keep the provider's effects, spend the amount. */
  commit(receipt: Receipt.Receipt | undefined, outcome: CommitOutcome): Promise<void>
  /** Never sent: undo the provider's effects, free the amount. */
  rollback(): Promise<void>
  /**
   * Sent and rejected by the server: undo the provider's effects. The amount stays spent if the
   * credential is a bearer payment the server could still settle (`settled`).
   */
  reject(): Promise<{ settled: boolean; failure: unknown }>
}

/**
 * Prepares a payment with `provider` and has `policy` approve it: the {@link Payment} whose
 * provider state and budget reservation then settle together.
 */
export async function startPayment(
  provider: PaymentProvider,
  policy: SpendingPolicy,
  parameters: Parameters<PaymentProvider['prepare']>[0],
  origin: string,
): Promise<Payment> {
  const { signal } = parameters
  // A provider's hook that never answers must not hold the request past its deadline.
  const settle = (hook: () => Promise<void>) => raceSignal(settling(hook), signal)
  // Its failure must not change what happened to the payment (the server decided that): the
  // provider owns its own state.
  const settleQuietly = (hook: () => Promise<void>) => settle(hook).catch(() => {})
  const preparing = provider.prepare(parameters)
  const prepared = await raceSignal(preparing, signal).catch((error: unknown) => {
    // Prepared after the deadline: nothing will use it.
    if (signal.aborted)
      preparing.then(
        (late) => settling(() => late.rollback()).catch(() => {}),
        () => {},
      )
    throw error
  })
  let reservation: Reservation
  try {
    reservation = await policy.approve(
      { challenge: parameters.challenge, quote: checkQuote(prepared.quote), origin },
      signal,
    )
  } catch (error) {
    await settleQuietly(() => prepared.rollback())
    throw error
  }
  const bearer = prepared.bearer === true
  return {
    quote: prepared.quote,
    bearer,
    authorize: () => prepared.authorize(),
    async commit(receipt, outcome) {
      reservation.commit()
      // The server has the payment: a provider that cannot record it must not lose the answer.
      await settleQuietly(() => prepared.commit(receipt, outcome))
      const { feePaid } = prepared
      if (feePaid) reservation.feePaid(() => feePaid())
    },
    async rollback() {
      reservation.release()
      await settleQuietly(() => prepared.rollback())
    },
    async reject() {
      if (bearer) reservation.commit()
      else reservation.release()
      // Unlike the other hooks, a failure here is reported: paying again on top of a provider
      // state that could not be undone is not safe.
      const failure = await settle(() => prepared.rollback()).then(
        () => undefined,
        (error: unknown) => error ?? new Error('The provider failed to undo the payment.'),
      )
      return { settled: bearer, failure }
    },
  }
}

/** What a provider's hook settles to, a synchronous throw included (a hook need not be async). */
export function settling<value>(hook: () => value | Promise<value>): Promise<value> {
  return new Promise<value>((resolve) => resolve(hook()))
}

/** The `Payment-Receipt` of an accepted answer, if it has a valid one. */
export function decodeReceipt(response: Response): Receipt.Receipt | undefined {
  try {
    return Receipt.fromResponse(response)
  } catch {
    return undefined
  }
}
