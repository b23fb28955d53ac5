/** Hops a paid request may follow within the same origin. */
const maxRedirects = 3

/**
 * Sends the request (with the credential, if any) as the caller's fetch would, except that it
 * follows no redirect to another origin: a credential must never reach a server it was not made
 * for.
 */
export async function sendWithinOrigin(
  fetchFn: (input: string, init: RequestInit) => Promise<Response>,
  url: string,
  init: RequestInit,
  credential: { header: string; value: string } | undefined,
  signal: AbortSignal,
) {
  const headers = new Headers(init.headers)
  if (credential) headers.set(credential.header, credential.value)
  let target = url
  for (let hop = 0; ; hop++) {
    const response = await fetchFn(target, { ...init, headers, signal, redirect: 'manual' })
    const redirected =
      response.type === 'opaqueredirect' || (response.status >= 300 && response.status < 400)
    if (!redirected) return response
    await response.body?.cancel()
    const location = response.headers.get('location')
    const next = location ? new URL(location, target) : undefined
    // Only 307 and 308 resend a POST as it was.
    const resendable = response.status === 307 || response.status === 308
    if (!next || next.origin !== new URL(target).origin || !resendable || hop >= maxRedirects)
      throw new Error(
        `The request was redirected (${response.status || 'opaque'}${next ? ` to ${next.origin}` : ''}); it was not followed.`,
      )
    target = next.href
  }
}

/**
 * `fetchFn` as a fetch that follows redirects only within the origin (see {@link sendWithinOrigin}):
 * what providers send their own requests with.
 */
export function withinOrigin(fetchFn: (input: string, init: RequestInit) => Promise<Response>) {
  return (url: string, { signal, ...init }: RequestInit) =>
    sendWithinOrigin(fetchFn, url, init, undefined, signal ?? new AbortController().signal)
}
