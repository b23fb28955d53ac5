import { Challenge, Credential, Receipt } from 'mppx'
import { RpcRequestError } from 'viem'
import { inBandProtocol } from './inBandProtocol.js'

/**
 * In-band JSON-RPC payment signalling (draft-payment-transport-mcp-00) spoken to the payment flow
 * as HTTP: a `200` whose JSON-RPC error is `-32042` (payment required) or `-32043` (verification
 * failed) reaches the flow as the `402` it stands for (its challenges in `WWW-Authenticate`, its
 * problem as the body), an answer's `_meta` receipt as `Payment-Receipt`, and a credential the
 * flow puts in `Authorization` goes out in the request's root-level `_meta` to an origin that
 * signalled in-band. So one flow (selection, policy, providers, two-phase commit, typed errors)
 * pays both signallings.
 *
 * Only an answer to a request this transport sent is read: its id must be one of the request's,
 * `data.httpStatus`, when present, must be 402, and `data.challenges` must be an array. Anything
 * else passes through as the JSON-RPC error it is, and nothing is paid.
 */

const { credentialKey, receiptKey, manageMethod } = inBandProtocol
const codes = new Set<number>([inBandProtocol.paymentRequired, inBandProtocol.verificationFailed])
/** Answers past this size are not read for a signal (a paid call's answer may be large). */
const maxSignalSize = 64 * 1024

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/**
 * In-band signalling spoken to the flow as HTTP (see the module's comment), for one transport:
 * which origins signal in-band is learnt from their answers (or told, `signalsInBand`), so that
 * a credential never reaches an origin's JSON-RPC body unless that origin asked for it there.
 * `fetch(fetchFn)` wraps a fetch: it moves the credential of a request to an in-band origin into
 * `_meta`, and reads the answer (when `inspect` says so) for a signal or a receipt.
 *
 * @example
 * ```ts
 * const inBand = inBandSignalling()
 * const flow = createPaymentFlow({ ...config, fetchFn: inBand.fetch(fetch) })
 * ```
 */
export function inBandSignalling({
  always = false,
}: {
  /** Every answer and credential is in-band (a WebSocket: there is no other way). */
  always?: boolean | undefined
} = {}) {
  const inBandOrigins = new Set<string>()
  const originOf = (input: string | URL | Request) =>
    new URL(input instanceof Request ? input.url : String(input)).origin
  return {
    /** Records that `url`'s origin asked for payment in-band. */
    signalsInBand(url: string) {
      inBandOrigins.add(originOf(url))
    },
    fetch(
      fetchFn: Fetch,
      {
        inspect = () => true,
      }: {
        /** Whether to read the answer to `init` for a signal (reading costs a copy of it). */
        inspect?: ((init: RequestInit) => boolean) | undefined
      } = {},
    ): Fetch {
      const signalled = async (input: string | URL | Request, given: RequestInit) => {
        const inBand = always || inBandOrigins.has(originOf(input))
        const init = inBand ? credentialInBody(asJsonRpc(given)) : given
        const response = await fetchFn(input, init)
        if (response.status === 402) inBandOrigins.delete(originOf(input))
        if (!inspect(init)) return response
        const signal = await signalOf(response, () => idsOf(init.body), challengeOf(init.body))
        if (signal?.challenged) inBandOrigins.add(originOf(input))
        return signal?.response ?? response
      }
      return (input, init = {}) =>
        // Nothing to move or read: the request as it is (the unpaid path's common case).
        !always && inBandOrigins.size === 0 && !inspect(init)
          ? fetchFn(input, init)
          : signalled(input, init)
    },
  }
}

/**
 * The `402` that a JSON-RPC error viem read stands for, if it is an in-band payment signal
 * (`-32042`/`-32043` in a `200`, with `data` as the draft says); `undefined` for any other error,
 * which is the caller's to throw as it is.
 *
 * @example
 * ```ts
 * const challenge = inBandChallengeOf(error)
 * if (challenge) return flow.pay(url, init, challenge)
 * ```
 */
export function inBandChallengeOf(error: unknown): Response | undefined {
  if (!(error instanceof RpcRequestError) || (error.status !== undefined && error.status !== 200))
    return undefined
  const signal = { code: error.code, data: error.data }
  // The same bound as for an answer read at the fetch: a larger one is not read as a signal.
  if (!isSignal(signal) || JSON.stringify(signal.data).length > maxSignalSize) return undefined
  return challengeResponse(signal)
}

/**
 * A management request (a `POST` without a body: a session's top-up or close) in its in-band
 * form, a request of `manageMethod`; any other request as it is.
 */
function asJsonRpc(init: RequestInit): RequestInit {
  if (init.body !== undefined && init.body !== null) return init
  const headers = new Headers(init.headers)
  headers.set('content-type', 'application/json')
  const body = { jsonrpc: '2.0', id: 0, method: manageMethod, params: [] }
  return { ...init, headers, body: JSON.stringify(body) }
}

/** `init` with its `Authorization: Payment …` credential moved to the body's root-level `_meta`. */
function credentialInBody(init: RequestInit): RequestInit {
  const headers = new Headers(init.headers)
  const authorization = headers.get('authorization')
  if (!authorization?.startsWith('Payment ') || typeof init.body !== 'string') return init
  let body: unknown
  let credential: unknown
  try {
    body = JSON.parse(init.body)
    credential = Credential.deserialize(authorization)
  } catch {
    return init
  }
  const first = Array.isArray(body) ? body[0] : body
  if (!first || typeof first !== 'object') return init
  const carrying = { ...first, _meta: { ...(first._meta ?? {}), [credentialKey]: credential } }
  headers.delete('authorization')
  return {
    ...init,
    headers,
    body: JSON.stringify(Array.isArray(body) ? [carrying, ...body.slice(1)] : carrying),
  }
}

/**
 * The HTTP form of an in-band answer: a `402` for `-32042`/`-32043`, or the answer with its
 * receipt in `Payment-Receipt`; `undefined` for an answer that signals nothing.
 */
async function signalOf(
  response: Response,
  requestIds: () => ReadonlySet<unknown>,
  paidChallenge: string | undefined,
): Promise<{ response: Response; challenged: boolean } | undefined> {
  if (response.status !== 200) return undefined
  if (!/json/i.test(response.headers.get('content-type') ?? '')) return undefined
  const length = Number(response.headers.get('content-length') ?? 0)
  if (length > maxSignalSize) return undefined
  const text = await response.text()
  const rebuilt = () => new Response(text, response)
  if (text.length > maxSignalSize || !/"(_meta|error)"/.test(text))
    return { response: rebuilt(), challenged: false }
  const ids = requestIds()
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return { response: rebuilt(), challenged: false }
  }
  const answers = (Array.isArray(parsed) ? parsed : [parsed]) as Record<string, unknown>[]
  const mine = answers.filter(
    (answer) => answer && typeof answer === 'object' && ids.has(answer.id),
  )
  const signalled = mine.map((answer) => answer.error).find(isSignal)
  if (signalled) return { response: challengeResponse(signalled), challenged: true }
  const receipt = mine.map((answer) => metaOf(answer._meta)?.[receiptKey]).find(Boolean)
  // A receipt naming another challenge than the one this request paid is not this payment's.
  const challengeId = metaOf(receipt)?.challengeId
  if (!receipt || (challengeId !== undefined && challengeId !== paidChallenge))
    return { response: rebuilt(), challenged: false }
  const headers = new Headers(response.headers)
  try {
    headers.set('payment-receipt', Receipt.serialize(receipt as Receipt.Receipt))
  } catch {}
  return {
    response: new Response(text, { status: 200, statusText: response.statusText, headers }),
    challenged: false,
  }
}

type Signal = {
  code: number
  data: { httpStatus?: unknown; challenges: unknown[]; problem?: unknown; failure?: unknown }
}

function isSignal(error: unknown): error is Signal {
  if (!error || typeof error !== 'object') return false
  const { code, data } = error as { code?: unknown; data?: Record<string, unknown> }
  return (
    typeof code === 'number' &&
    codes.has(code) &&
    !!data &&
    typeof data === 'object' &&
    (data.httpStatus === undefined || data.httpStatus === 402) &&
    Array.isArray(data.challenges)
  )
}

/** The `402` a `-32042`/`-32043` stands for: its challenges, and its problem as the body. */
function challengeResponse({ code, data }: Signal): Response {
  const headers = new Headers()
  for (const challenge of data.challenges)
    try {
      headers.append('www-authenticate', Challenge.serialize(Challenge.from(challenge as never)))
    } catch {}
  const problem =
    metaOf(data.problem) ??
    (code === -32043
      ? {
          type: 'https://paymentauth.org/problems/verification-failed',
          title: 'Payment Verification Failed',
          status: 402,
          ...(metaOf(data.failure)?.detail ? { detail: String(metaOf(data.failure)?.detail) } : {}),
        }
      : undefined)
  if (problem) headers.set('content-type', 'application/problem+json')
  return new Response(problem ? JSON.stringify(problem) : null, {
    status: 402,
    statusText: 'Payment Required',
    headers,
  })
}

/** The id of the challenge the credential in `body`'s root-level `_meta` pays, if any. */
function challengeOf(body: RequestInit['body']): string | undefined {
  if (typeof body !== 'string' || !body.includes(credentialKey)) return undefined
  try {
    const parsed = JSON.parse(body) as unknown
    const first = (Array.isArray(parsed) ? parsed[0] : parsed) as { _meta?: unknown }
    const credential = metaOf(metaOf(first?._meta)?.[credentialKey])
    const id = metaOf(credential?.challenge)?.id
    return typeof id === 'string' ? id : undefined
  } catch {
    return undefined
  }
}

/** The ids of the JSON-RPC requests in `body` (none for a body that is not JSON-RPC). */
function idsOf(body: RequestInit['body']): Set<unknown> {
  if (typeof body !== 'string') return new Set()
  try {
    const parsed = JSON.parse(body) as unknown
    const requests = (Array.isArray(parsed) ? parsed : [parsed]) as { id?: unknown }[]
    return new Set(
      requests.filter((request) => request && request.id !== undefined).map(({ id }) => id),
    )
  } catch {
    return new Set()
  }
}

function metaOf(value: unknown): Record<string, unknown> | undefined {
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined
}
