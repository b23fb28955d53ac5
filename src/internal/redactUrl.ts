/**
 * The part of a URL that is safe to show in errors and logs: its origin. Userinfo, path and query
 * are dropped because RPC providers put API keys in all three.
 */
export function redactUrl(url: string): string {
  try {
    const { origin, protocol, host } = new URL(url)
    // A scheme without origins (redis://, wss:// has one): its scheme and host all the same.
    return origin === 'null' && host ? `${protocol}//${host}` : origin
  } catch {
    return '<invalid URL>'
  }
}

const urlPattern = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi

/** `text` with every URL in it cut down to its origin. */
export function redactUrls(text: string): string {
  return text.replace(urlPattern, (match) => {
    // Sentence punctuation after a URL is not part of it.
    const [, url = match, trailing = ''] = /^(.*?)([.,;:!?)\]]*)$/.exec(match) ?? []
    const origin = redactUrl(url)
    return `${origin === 'null' || origin === '<invalid URL>' ? '<URL>' : origin}${trailing}`
  })
}

/**
 * A copy of an error chain that is safe to attach to our errors: the same names and messages,
 * with URLs cut down to their origins (a cause from the caller's own chain client quotes its RPC
 * URL, API key included).
 */
export function redactError(error: unknown, depth = 0): Error {
  if (redactedInPlace.has(error as Error)) return error as Error
  const source = error instanceof Error ? error : new Error(String(error))
  // viem's errors: the short message and details, without the request dump of the full message.
  const { shortMessage, details } = source as { shortMessage?: unknown; details?: unknown }
  const message =
    typeof shortMessage === 'string'
      ? `${shortMessage}${typeof details === 'string' && details ? ` ${details}` : ''}${contractOf(source)}`
      : source.message
  const copy = new Error(redactUrls(message))
  copy.name = source.name
  if (source.cause !== undefined && depth < 8)
    Object.defineProperty(copy, 'cause', { value: redactError(source.cause, depth + 1) })
  return copy
}

/**
 * The contract and function of a failed contract call, from viem's "Contract Call" meta lines:
 * context that helps and holds no secret (unlike the request body, a signed transaction's).
 */
function contractOf(error: Error): string {
  const { metaMessages } = error as { metaMessages?: unknown }
  if (!Array.isArray(metaMessages)) return ''
  const lines = metaMessages.filter((line): line is string => typeof line === 'string').join('\n')
  const call = lines.slice(lines.indexOf('Contract Call:'))
  const address = /^\s*address:\s*(0x[0-9a-fA-F]{40})\s*$/m.exec(call)?.[1]
  const fn = /^\s*function:\s*(.+?)\s*$/m.exec(call)?.[1]
  if (!lines.includes('Contract Call:') || !address) return ''
  return ` (contract ${address}${fn ? `, function ${fn}` : ''})`
}

const redactedInPlace = new WeakSet<Error>()

/**
 * Cuts the URLs of an error chain down to their origins in place: each error's message, details,
 * meta messages and `url`. For errors the caller must get with their class (viem's typed RPC
 * errors); `redactError` then takes them as they are.
 */
export function redactErrorInPlace<error extends Error>(error: error): error {
  for (let depth = 0, cause: unknown = error; cause instanceof Error && depth < 8; depth++) {
    const target = cause as Error & { details?: unknown; metaMessages?: unknown; url?: unknown }
    target.message = redactUrls(target.message)
    if (typeof target.details === 'string') target.details = redactUrls(target.details)
    if (Array.isArray(target.metaMessages))
      target.metaMessages = target.metaMessages.map((line) =>
        typeof line === 'string' ? redactUrls(line) : line,
      )
    if (typeof target.url === 'string') target.url = redactUrl(target.url)
    redactedInPlace.add(target)
    cause = target.cause
  }
  return error
}
