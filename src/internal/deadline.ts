/**
 * A deadline (a payment flow's, a close's): aborts when `timeout` ms have passed or the caller's signal aborts,
 * whichever comes first. Its timer is held here, not by `AbortSignal.timeout`, whose signal Node
 * may garbage-collect while a request waits (and the deadline with it); `clear()` releases it.
 */
export type Deadline = {
  signal: AbortSignal
  /** Stops the timer and detaches from the caller's signal. Idempotent. */
  clear(): void
}

/** The reason a deadline aborts with when its time runs out. */
class DeadlineError extends Error {
  override name = 'PaymentTimeoutError'
}

/**
 * A deadline of `timeout` ms (0: none, only the caller's signal ends it); `message` is that of the
 * error it aborts with when the time runs out.
 *
 * @example
 * ```ts
 * const deadline = createDeadline(30_000, signal, (ms) => `The close took over ${ms} ms.`)
 * try {
 *   await raceSignal(work(), deadline.signal)
 * } finally {
 *   deadline.clear()
 * }
 * ```
 */
export function createDeadline(
  timeout: number,
  callerSignal?: AbortSignal | null,
  message = (ms: number) => `The payment did not complete within paymentTimeout (${ms} ms).`,
): Deadline {
  const controller = new AbortController()
  const abort = (reason: unknown) => {
    clear()
    controller.abort(reason)
  }
  const onCallerAbort = () => abort(callerSignal?.reason)
  // Held on purpose (not unref'd): a payment in flight keeps the process up until it ends.
  const timer =
    timeout > 0 ? setTimeout(() => abort(new DeadlineError(message(timeout))), timeout) : undefined
  const clear = () => {
    clearTimeout(timer)
    callerSignal?.removeEventListener('abort', onCallerAbort)
  }
  if (callerSignal?.aborted) abort(callerSignal.reason)
  else callerSignal?.addEventListener('abort', onCallerAbort, { once: true })
  return { signal: controller.signal, clear }
}

/**
 * The response with a body that calls `release` once it has been read to its end, failed or been
 * cancelled, so that a deadline can bound the body's arrival and still be freed at once after.
 */
export function releaseAfterBody(response: Response, release: () => void): Response {
  const source = response.body
  if (!source) {
    release()
    return response
  }
  const reader = source.getReader()
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read()
        if (done) {
          release()
          controller.close()
        } else controller.enqueue(value)
      } catch (error) {
        release()
        controller.error(error)
      }
    },
    async cancel(reason) {
      release()
      await reader.cancel(reason)
    },
  })
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  })
}
