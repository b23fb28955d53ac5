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
  if (!type.includes('json')) {
    await response.body?.cancel()
    return undefined
  }
  const length = Number(response.headers.get('content-length') ?? 0)
  if (length > maxProblemSize) {
    await response.body?.cancel()
    return undefined
  }
  try {
    const text = await response.text()
    if (text.length > maxProblemSize) return undefined
    const parsed = problemSchema.safeParse(JSON.parse(text))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}

/**
 * Why the server rejected a payment, as far as a client can act on it:
 * - `channelGone`: `410 Gone`: the server no longer knows the session channel;
 * - `keyNotProvisioned`: the access key is not on chain yet, so the payment needs its
 *   key authorization attached;
 * - `staleVoucher`: the voucher's cumulative amount is not above what the server has;
 * - `challengeExpired`: the challenge was stale or unknown, so the server never looked at the
 *   payment;
 * - `rejected`: anything else.
 */
export type Rejection =
  | 'channelGone'
  | 'keyNotProvisioned'
  | 'staleVoucher'
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
  if (type.endsWith('/invalid-challenge') || type.endsWith('/payment-expired'))
    return 'challengeExpired'
  return 'rejected'
}
