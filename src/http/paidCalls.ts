import { BaseError, HttpRequestError, RpcRequestError, shouldThrow } from 'viem'
import { buildRequest } from 'viem/utils'
import { isPaymentError, type PaymentError, PaymentFailedError } from '../errors.js'
import { type Attempt, type Call, createInFlightCalls } from '../internal/inFlightCalls.js'
import { redactErrorInPlace } from '../internal/redactUrl.js'

/**
 * What `mppHttp` keeps of its paid calls, across the three layers a call travels through (viem's
 * retry layer, the attempt that knows whether it was paid, the inner http()), and how their
 * errors come out of viem's layers typed:
 *
 * - the attempts in flight, and whether a paid request carried them (those are never repeated);
 * - a payment error travels through viem's HTTP client as a bare 402 (a thrown error would be
 *   wrapped into a retryable one), whose headers viem keeps in the `HttpRequestError` it throws:
 *   {@link standIn} makes it, {@link takeFailure} swaps it back;
 * - the last payment made for each call, so that a caller who gives up learns how it ended.
 *
 * @example
 * ```ts
 * const paidCalls = createPaidCalls()
 * const response = paidCalls.standIn(failure) // a 402 that stands for the payment error
 * ```
 */
export function createPaidCalls() {
  const inFlight = createInFlightCalls()
  const failures = new WeakMap<Headers, PaymentError>()
  // The errors that carry a paid call's JSON-RPC error (their cause) through viem's retry layer.
  const paidCallFailures = new WeakSet<PaymentFailedError>()
  const payments = new WeakMap<
    Call,
    { attempt: Attempt; outcome: Promise<PaymentError | undefined> }
  >()

  return {
    inFlight,

    /**
     * The answer of a paid request of `calls`: the attempts it carries are paid for, so that no
     * retry repeats them; a payment error comes back as a 402 that stands for it.
     */
    async paidFor(calls: Call[] | undefined, paying: Promise<Response>, origin: string) {
      const carried = inFlight.carriedBy(calls)
      const outcome = paying.then(
        () => undefined,
        (error: unknown) => asPaymentError(error, origin),
      )
      for (const attempt of carried) payments.set(attempt.call, { attempt, outcome })
      const failure = await outcome
      if (failure) return standIn(failure)
      for (const attempt of carried) attempt.paid = true
      return paying
    },

    /** The payment error behind a 402 that stands for one, if `error` is such a 402. */
    takeFailure(error: unknown) {
      if (!(error instanceof BaseError)) return undefined
      const httpError = error.walk((e) => e instanceof HttpRequestError) as HttpRequestError | null
      return httpError?.headers ? failures.get(httpError.headers) : undefined
    },

    /**
     * The final error for a call whose paid request failed (a JSON-RPC error in the answer, or
     * an answer that could not be read): its cause is the call's own error, typed as viem types
     * it for http(), with its URLs cut down to the origin. viem's retry layer does not repeat it
     * (its code is final), nor would a retry layer above (`fallback()`'s): it carries no HTTP
     * status to retry by.
     */
    async paidCallFailure(error: unknown, call: Call, origin: string) {
      const typed = await typedAsHttp(error, call)
      // The server's JSON-RPC answer reaches the caller; a failure to read the answer (a body
      // that stalls past paymentTimeout, a broken one) stays a payment failure.
      const answered =
        typed instanceof BaseError && !!typed.walk((e) => e instanceof RpcRequestError)
      for (let cause: unknown = typed; cause instanceof Error; cause = cause.cause)
        if (cause instanceof HttpRequestError || cause instanceof RpcRequestError) {
          cause.status = undefined
          cause.headers = undefined
        }
      const failure = new PaymentFailedError({
        shortMessage: 'The paid request failed; it was paid for, so it is not retried.',
        origin,
        settled: true,
        cause: redactErrorInPlace(typed),
      })
      if (answered) paidCallFailures.add(failure)
      return failure
    },

    /**
     * Throws what the retry layer threw, except for a payment error, which comes out of the RPC
     * error viem's retry layer puts around it (for its code), and a paid call's JSON-RPC error,
     * which comes out of the payment error that carried it (except inside `fallback()`, unless
     * `fallback()` would stop at it anyway).
     */
    unwrap(error: unknown, inFallback: boolean): never {
      if (!(error instanceof BaseError)) throw error
      const payment = error.walk(isPaymentError) as PaymentError | null
      if (!payment) throw error
      if (!paidCallFailures.has(payment as PaymentFailedError)) throw payment
      const own = payment.cause as Error
      throw inFallback && !shouldThrow(own) ? payment : own
    },

    /**
     * The caller gave up (viem's retry layer ends the call at once, with the abort): if a payment
     * for this call had started since `since`, the caller learns how it ended, once it has.
     */
    async afterAbort(abort: unknown, call: Call, since: number, origin: string): Promise<never> {
      const payment = payments.get(call)
      if (!payment || payment.attempt.sequence < since) throw abort
      const failure = await payment.outcome
      if (failure instanceof PaymentFailedError && failure.settled) throw failure
      if (failure) throw abort
      throw new PaymentFailedError({
        shortMessage: 'The caller gave up after the payment was made.',
        origin,
        settled: true,
        cause: abort,
      })
    },
  }

  /** A 402 that stands for `failure`, for viem's HTTP client to carry. */
  function standIn(failure: PaymentError) {
    const response = new Response(null, { status: 402, statusText: 'Payment Required' })
    failures.set(response.headers, failure)
    return response
  }
}

/** What {@link createPaidCalls} returns. */
export type PaidCalls = ReturnType<typeof createPaidCalls>

/** Whether `error` is an abort, as viem's retry layer tells one (which it never retries). */
export function isAbortError(error: unknown) {
  return (error as { name?: unknown } | null)?.name === 'AbortError'
}

/** `error` as viem's request layer types it for http() (e.g. `MethodNotFoundRpcError`). */
function typedAsHttp(error: unknown, call: Call): Promise<Error> {
  return buildRequest(() => Promise.reject(error), { retryCount: 0 })(call as never).then(
    () => error as Error,
    (typed: Error) => typed,
  )
}

/** The flow throws payment errors only; anything else is a bug, treated as a payment made. */
function asPaymentError(error: unknown, origin: string): PaymentError {
  if (isPaymentError(error)) return error
  return new PaymentFailedError({
    shortMessage: 'The payment flow failed unexpectedly.',
    origin,
    settled: true,
    cause: error,
  })
}
