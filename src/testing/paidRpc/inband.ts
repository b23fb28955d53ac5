import { Challenge, Credential, Receipt } from 'mppx'

/**
 * In-band JSON-RPC payment signalling (draft-payment-transport-mcp-00) over mppx's HTTP gate: a
 * message's credential (root-level `_meta`, or `params._meta` as MCP places it: servers must read
 * both) becomes the `Authorization` header of the request the gate verifies, the gate's 402
 * becomes a `-32042` error (`-32043` when a credential was refused), and its `Payment-Receipt`
 * the answer's root-level `_meta`. One verification path for every signalling.
 */

/** The draft's error codes and `_meta` keys. */
export const inBand = {
  paymentRequired: -32042,
  verificationFailed: -32043,
  credentialKey: 'org.paymentauth/credential',
  receiptKey: 'org.paymentauth/receipt',
} as const

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
export async function challengeAnswer(response: Response, id: unknown, withCredential: boolean) {
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
