import { z } from 'zod'

/** Problem details (RFC 9457) that MPP servers send with 402 and 410 answers. */
export type Problem = z.infer<typeof problemSchema>

const problemSchema = z
  .object({
    type: z.string().max(2_048).optional(),
    title: z.string().max(2_048).optional(),
    detail: z.string().max(4_096).optional(),
    status: z.number().int().optional(),
  })
  .loose()

/** Bodies past this size are not problem details we act on; they are not read further. */
const maxProblemSize = 64 * 1024

/**
 * Reads a response's problem details; `undefined` for any other body (missing, not JSON, too
 * large, or not an object).
 */
export async function readProblem(response: Response): Promise<Problem | undefined> {
  const type = response.headers.get('content-type') ?? ''
  const text = type.includes('json') ? await readAtMost(response, maxProblemSize) : undefined
  if (text === undefined) {
    await response.body?.cancel().catch(() => {})
    return undefined
  }
  try {
    const parsed = problemSchema.safeParse(JSON.parse(text))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}

/** The body as text, or `undefined` once it grows past `limit` bytes (the rest is not read). */
async function readAtMost(response: Response, limit: number): Promise<string | undefined> {
  if (!response.body) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > limit) {
        await reader.cancel()
        return undefined
      }
      chunks.push(value)
    }
  } catch {
    return undefined
  } finally {
    reader.releaseLock()
  }
  const bytes = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.byteLength
  }
  return new TextDecoder().decode(bytes)
}

/**
 * Why the server rejected a payment, as far as a client can act on it:
 * - `channelGone`: `410 Gone`: the server no longer knows the session channel;
 * - `keyNotProvisioned`: the access key is not on chain yet, so the payment needs its
 *   key authorization attached;
 * - `staleVoucher`: the voucher's cumulative amount is not above what the server has;
 * - `insufficientBalance`: the session voucher leaves too little unspent for the call (e.g. a
 *   voucher the server already charged for, sent again);
 * - `depositExceeded`: the session voucher is above the channel's deposit;
 * - `challengeExpired`: the challenge was stale or unknown, so the server never looked at the
 *   payment;
 * - `rejected`: anything else.
 */
export type Rejection =
  | 'channelGone'
  | 'keyNotProvisioned'
  | 'staleVoucher'
  | 'insufficientBalance'
  | 'depositExceeded'
  | 'challengeExpired'
  | 'rejected'

/** Classifies a 402/410 answer to a paid request, the way Foundry and mpp-rs do. */
export function classifyRejection(status: number, problem: Problem | undefined): Rejection {
  if (status === 410) return 'channelGone'
  const type = problem?.type ?? ''
  const detail = problem?.detail?.toLowerCase() ?? ''
  if (
    type.endsWith('/key-not-provisioned') ||
    detail.includes('access key does not exist') ||
    detail.includes('key is not provisioned')
  )
    return 'keyNotProvisioned'
  if (
    type.endsWith('/stale-voucher') ||
    detail.includes('cumulativeamount must be strictly greater')
  )
    return 'staleVoucher'
  if (type.endsWith('/session/insufficient-balance')) return 'insufficientBalance'
  if (type.endsWith('/session/amount-exceeds-deposit')) return 'depositExceeded'
  if (type.endsWith('/invalid-challenge') || type.endsWith('/payment-expired'))
    return 'challengeExpired'
  return 'rejected'
}
