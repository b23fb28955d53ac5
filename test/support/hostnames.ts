import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { LookupFunction } from 'node:net'

/**
 * A `fetch` that resolves the hostnames in `hosts` with its own lookup (every address is
 * loopback), so that a test reaches a server on 127.0.0.1 under a name that is not a loopback
 * name, as a client reaches a remote node, without sending anything off this machine. Other
 * hostnames are refused. `ca` is trusted for `https://` (a test CA).
 *
 * @example
 * ```ts
 * const fetchFn = fetchResolving({ 'devnet.viem-mpp.test': '127.0.0.1' })
 * mppHttp(`http://devnet.viem-mpp.test:${port}`, { fetchFn })
 * ```
 */
export function fetchResolving(
  hosts: Record<string, '127.0.0.1'>,
  { ca }: { ca?: string | undefined } = {},
): typeof fetch {
  const lookup: LookupFunction = (hostname, options, callback) => {
    const address = hosts[hostname]
    if (!address) return callback(new Error(`${hostname} is not a test hostname`), '', 4)
    if (options.all)
      return (callback as never as (error: null, all: unknown[]) => void)(null, [
        { address, family: 4 },
      ])
    callback(null, address, 4)
  }
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input))
    const headers = new Headers(init.headers)
    const body = init.body === undefined || init.body === null ? undefined : String(init.body)
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest
    return new Promise<Response>((resolve, reject) => {
      const outgoing = send(
        url,
        {
          method: init.method ?? 'GET',
          headers: Object.fromEntries(headers),
          lookup,
          ...(ca ? { ca } : {}),
        },
        (incoming) => {
          const chunks: Buffer[] = []
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk))
          incoming.on('end', () => {
            const answer = new Headers()
            for (const [name, value] of Object.entries(incoming.headers))
              if (typeof value === 'string') answer.set(name, value)
            const status = incoming.statusCode ?? 0
            resolve(
              new Response(status === 204 ? null : Buffer.concat(chunks), {
                status,
                headers: answer,
              }),
            )
          })
          incoming.on('error', reject)
        },
      )
      outgoing.on('error', reject)
      init.signal?.addEventListener('abort', () => outgoing.destroy(init.signal?.reason), {
        once: true,
      })
      outgoing.end(body)
    })
  }
}
