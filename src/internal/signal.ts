/**
 * `promise`, or the signal's abort reason if it aborts first. What `promise` later settles to is
 * the caller's to clean up: it is not awaited here.
 */
export function raceSignal<value>(promise: Promise<value>, signal: AbortSignal): Promise<value> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<value>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}
