import { InvalidPlainHttpOriginError } from '../errors.js'
import { warnOnce } from '../internal/warnOnce.js'

/**
 * Origins reached over plain `http://` to which payment credentials may go all the same: a devnet
 * on the user's own network (10/8, 192.168/16, a docker bridge), named one by one.
 */
export type PlainHttpOrigins = readonly string[]

/**
 * Which URLs a payment credential may be sent to: `https://`, loopback over `http://` (this
 * machine), and the plain-`http://` origins the user named in `dangerouslyPayOverPlainHttp`, each
 * with a warning the first time in the process (credentials cross that network readable, and a
 * charge's credential can be settled by whoever reads it). An entry that is not an `http://`
 * origin (a scheme, host and port, no path) throws `InvalidPlainHttpOriginError` when the
 * transport is made.
 *
 * @example
 * ```ts
 * const mayCarryCredentials = credentialPolicy(['http://10.0.0.5:8545'])
 * mayCarryCredentials(new URL('http://10.0.0.5:8545/rpc')) // true, with a warning the first time
 * ```
 */
export function credentialPolicy(plainHttpOrigins: PlainHttpOrigins = []) {
  const allowed = new Set(plainHttpOrigins.map(originOf))
  return (url: URL) => {
    if (url.protocol === 'https:') return true
    if (url.protocol !== 'http:') return false
    if (isLoopback(url.hostname)) return true
    if (!allowed.has(url.origin)) return false
    warnOnce(
      'VIEM_MPP_PLAIN_HTTP',
      url.origin,
      `payment credentials go to ${url.origin} over plain http (dangerouslyPayOverPlainHttp): anyone on the network path can read them, and a charge's can be settled by whoever does.`,
    )
    return true
  }
}

/** The origin an entry names, or `InvalidPlainHttpOriginError`. */
function originOf(entry: string) {
  const url = URL.canParse(entry) ? new URL(entry) : undefined
  const isOrigin =
    url?.protocol === 'http:' &&
    !url.username &&
    !url.password &&
    url.pathname === '/' &&
    !url.search &&
    !url.hash
  if (!isOrigin) throw new InvalidPlainHttpOriginError({ entry })
  return url.origin
}

function isLoopback(host: string) {
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
  )
}
