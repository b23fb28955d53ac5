import { PaymentFailedError, PaymentRefusedError, PaymentRequiredError } from '../../src/index.js'
import { inParallel } from './inParallel.js'
import type { PaidHook } from './proxy.js'
import { seededRandom } from './random.js'

/**
 * A fault the proxy of a storm deals a paid request: the connection reset before the server sees
 * it (`dropBefore`) or after it answered (`dropAfter`); a 502 after it accepted; an answer slower
 * than the payment deadline; or an answer the server never gave: a 410 (`gone`), a stale-voucher
 * 402 (`stale`), a 402 saying the challenge expired (`expired`).
 */
export type Fault =
  | 'dropBefore'
  | 'dropAfter'
  | 'badGateway'
  | 'slow'
  | 'gone'
  | 'stale'
  | 'expired'

/**
 * The faults of a storm: a proxy hook that deals one of `faults` to about `rate` of the paid
 * requests, from a seeded PRNG (`STORM_SEED` replays a run), until `calm()`.
 *
 * @example
 * ```ts
 * const storm = faultStorm({ faults: ['dropBefore', 'slow'], slowerThan: 8_000 })
 * const proxy = await startProxy(rpc.url, storm.hook)
 * ```
 */
export function faultStorm({
  faults,
  slowerThan,
  rate = 0.1,
}: {
  faults: readonly Fault[]
  /** The payment deadline: a `slow` answer comes half a second after it. */
  slowerThan: number
  rate?: number
}) {
  const seed = Number(process.env.STORM_SEED ?? Date.now() % 1_000_000)
  const random = seededRandom(seed)
  const dealt = Object.fromEntries(faults.map((fault) => [fault, 0])) as Record<Fault, number>
  let calm = false
  const hook: PaidHook = async (_, forward) => {
    if (calm || random() >= rate) return forward()
    const fault = faults[Math.floor(random() * faults.length)]!
    dealt[fault]++
    switch (fault) {
      case 'dropBefore':
        return 'drop'
      case 'dropAfter':
        await (await forward()).text()
        return 'drop'
      case 'badGateway':
        await (await forward()).text()
        return new Response('bad gateway', { status: 502 })
      case 'slow': {
        const answer = await forward()
        await new Promise((resolve) => setTimeout(resolve, slowerThan + 500))
        return answer
      }
      case 'gone':
        return problem(410, 'session/channel-not-found')
      case 'stale':
        return problem(402, 'verification-failed', 'voucher must be strictly greater')
      case 'expired':
        return problem(402, 'payment-expired', 'expired')
    }
  }
  return {
    seed,
    hook,
    dealt,
    /** From now on, requests pass untouched. */
    calm() {
      calm = true
    },
  }
}

/**
 * Makes `calls` calls, `inFlight` at a time, and counts how they ended: `ok`, and each failure
 * by its error's name and short message (`untyped: …` for an error that is not the library's).
 */
export async function runCalls(
  calls: number,
  inFlight: number,
  call: (index: number) => Promise<unknown>,
) {
  let ok = 0
  const failures = new Map<string, number>()
  await inParallel(calls, inFlight, async (index) => {
    try {
      await call(index)
      ok++
    } catch (error) {
      const name = failureName(error)
      failures.set(name, (failures.get(name) ?? 0) + 1)
    }
  })
  const failed = [...failures.values()].reduce((sum, n) => sum + n, 0)
  return { ok, failed, failures: Object.fromEntries(failures) }
}

function failureName(error: unknown) {
  const typed =
    error instanceof PaymentFailedError ||
    error instanceof PaymentRefusedError ||
    error instanceof PaymentRequiredError
  if (!typed) return `untyped: ${(error as Error).message}`
  const detail = /Detail: (.*)/.exec(error.message)?.[1]
  const cause = error.cause ? ` (${String(error.cause).slice(0, 120)})` : ''
  return `${error.name}: ${error.shortMessage}${detail ? ` ${detail}` : ''}${cause}`
}

function problem(status: number, type: string, detail = type) {
  return Response.json(
    { type: `https://paymentauth.org/problems/${type}`, detail },
    { status, headers: { 'content-type': 'application/problem+json' } },
  )
}
