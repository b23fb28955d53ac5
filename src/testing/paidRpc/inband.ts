import { Challenge, Credential, Receipt } from 'mppx'
import { inBandProtocol } from '../../internal/inBandProtocol.js'

/**
 * In-band JSON-RPC payment signalling (draft-payment-transport-mcp-00) over mppx's HTTP gate: a
 * message's credential (root-level `_meta`, or `params._meta` as MCP places it: servers must read
 * both) becomes the `Authorization` header of the request the gate verifies, the gate's 402
 * becomes a `-32042` error (`-32043` when a credential was refused), and its `Payment-Receipt`
 * the answer's root-level `_meta`. One verification path for every signalling.
 */

/** The draft's error codes and `_meta` keys, and viem-mpp's management method. */
export const inBand = inBandProtocol

/** A JSON-RPC request as it arrives: any object (validated by the gate and the upstream). */
export type JsonRpcMessage = Record<string, unknown> & {
  id?: unknown
  params?: unknown
  _meta?: unknown
}

/**
 * The credential of a message (root-level `_meta` first, then `params._meta`) and the message
 * without it, as the upstream must see it. A credential that is not an object is kept as it is,
 * for the gate to refuse.
 *
 * @example
 * ```ts
 * const { credential, message } = takeCredential(JSON.parse(body))
 * ```
 */
export function takeCredential(input: JsonRpcMessage): {
  credential: unknown
  message: JsonRpcMessage
} {
  const { _meta: rootMeta, ...message } = input
  const root = metaOf(rootMeta)
  const params = message.params
  const nested =
    params && typeof params === 'object' && !Array.isArray(params)
      ? metaOf((params as { _meta?: unknown })._meta)
      : undefined
  const credential = root?.[inBand.credentialKey] ?? nested?.[inBand.credentialKey]
  if (nested && inBand.credentialKey in nested) {
    const { _meta: _, ...rest } = params as Record<string, unknown>
    message.params = rest
  }
  return { credential, message }
}

/**
 * The `Authorization` header value of an in-band credential, for mppx's gate: `undefined` for
 * none, and a value the gate refuses for one that does not serialize.
 *
 * @example
 * ```ts
 * const authorization = authorizationOf(credential)
 * ```
 */
export function authorizationOf(credential: unknown): string | undefined {
  if (credential === undefined) return undefined
  try {
    return Credential.serialize(credential as Credential.Credential)
  } catch {
    return 'Payment invalid'
  }
}

/**
 * The JSON-RPC error answering `id` for the gate's 402: `-32042` with the challenges, or
 * `-32043` (verification failed) when the request carried a credential; `problem` from the body.
 *
 * @example
 * ```ts
 * if (result.status === 402) send(await challengeAnswer(result.challenge, message.id, paid))
 * ```
 */
async function challengeAnswer(response: Response, id: unknown, withCredential: boolean) {
  const challenges = Challenge.fromResponseList(response)
  const problem = await response
    .clone()
    .json()
    .catch(() => undefined)
  const failed = withCredential
  return {
    jsonrpc: '2.0',
    id: id ?? null,
    error: {
      code: failed ? inBand.verificationFailed : inBand.paymentRequired,
      message: failed ? 'Payment Verification Failed' : 'Payment Required',
      data: {
        httpStatus: 402,
        challenges,
        ...(problem && typeof problem === 'object' ? { problem } : {}),
      },
    },
  }
}

/**
 * `answer` (the upstream's JSON-RPC answer) with the gate's receipt in its root-level `_meta`,
 * and the challenge it answers; `answer` unchanged when the response carries no receipt.
 *
 * @example
 * ```ts
 * send(withReceipt(JSON.parse(body), paid))
 * ```
 */
export function withReceipt(answer: unknown, response: Response, challengeId?: string) {
  if (!response.headers.has('payment-receipt') || !answer || typeof answer !== 'object')
    return answer
  const receipt = Receipt.fromResponse(response)
  const meta = metaOf((answer as { _meta?: unknown })._meta) ?? {}
  return {
    ...answer,
    _meta: {
      ...meta,
      [inBand.receiptKey]: { ...receipt, ...(challengeId ? { challengeId } : {}) },
    },
  }
}

function metaOf(value: unknown): Record<string, unknown> | undefined {
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined
}

/**
 * Answers one JSON-RPC message (text: a request or a batch) under in-band signalling, through
 * mppx's HTTP `gate`: a `-32042`/`-32043` error for each request while unpaid, else the upstream's
 * answer (`forward`) with the receipt in the first answer's root-level `_meta`. A batch is one
 * paid request: its credential rides on its first element. A management request (`manageMethod`:
 * a top-up, a close) is verified as a `POST` without a body and answered `result: null` with its
 * receipt, forwarded nowhere.
 *
 * @example
 * ```ts
 * const answer = inBandAnswerer({ gate, forward: (body) => upstream.post(body) })
 * socket.send(JSON.stringify(await answer(text)))
 * ```
 */
export function inBandAnswerer({
  gate,
  forward,
  onChallenge,
}: {
  gate: (request: Request) => Promise<GateResult>
  /** Sends the body (without credentials) upstream, and resolves with the answer's text. */
  forward: (body: string) => Promise<string>
  onChallenge?: (() => void) | undefined
}) {
  return async (text: string): Promise<unknown> => {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }
    }
    const batch = Array.isArray(parsed)
    const messages = (batch ? parsed : [parsed]) as JsonRpcMessage[]
    const [first, ...rest] = messages
    if (!first || typeof first !== 'object')
      return { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request' } }
    const { credential, message } = takeCredential(first)
    const forwarded = JSON.stringify(batch ? [message, ...rest] : message)
    const authorization = authorizationOf(credential)
    // A management request is verified as its HTTP form is: a POST without a body.
    const managing = !batch && message.method === inBand.manageMethod
    const result = await gate(
      new Request('http://127.0.0.1/', {
        method: 'POST',
        headers: {
          ...(managing ? {} : { 'content-type': 'application/json' }),
          ...(authorization ? { authorization } : {}),
        },
        ...(managing ? {} : { body: forwarded }),
      }),
    )
    if (result.status === 402) {
      onChallenge?.()
      const answers = await Promise.all(
        messages.map((each) =>
          challengeAnswer(result.challenge, each.id, credential !== undefined),
        ),
      )
      return batch ? answers : answers[0]
    }
    const challengeId = (credential as { challenge?: { id?: string } } | undefined)?.challenge?.id
    if (managing)
      return withReceipt(
        { jsonrpc: '2.0', id: first.id ?? null, result: null },
        result.withReceipt(),
        challengeId,
      )
    const answer = JSON.parse(await forward(forwarded)) as unknown
    const paid = result.withReceipt(new Response(null))
    return Array.isArray(answer)
      ? answer.map((each, index) => (index === 0 ? withReceipt(each, paid, challengeId) : each))
      : withReceipt(answer, paid, challengeId)
  }
}

/** What mppx's composed gate resolves with (the parts used here). */
type GateResult =
  | { status: 402; challenge: Response }
  | { status: 200; withReceipt: (response?: Response) => Response }
