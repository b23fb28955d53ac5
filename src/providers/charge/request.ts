import type { Challenge } from 'mppx'
import { concat, type Hex, keccak256, slice, stringToHex } from 'viem'
import { z } from 'zod'
import { otherChain, type RequestOrReason } from '../../internal/reasons.js'
import {
  addressSchema as address,
  baseUnitsSchema,
  bytes32Schema as bytes32,
} from '../../internal/wireSchemas.js'
import type { PaymentQuote } from '../PaymentProvider.js'

/** A base-10 integer string of base units (draft-tempo-charge-00), at most a uint256. */
const baseUnits = baseUnitsSchema(256)

/** The parts of a Tempo charge request (draft-tempo-charge-00) that are paid and checked. */
const chargeRequestSchema = z
  .object({
    amount: baseUnits,
    currency: address,
    recipient: address,
    methodDetails: z
      .object({
        chainId: z.number().int().optional(),
        feePayer: z.boolean().optional(),
        memo: bytes32.optional(),
        splits: z
          .array(
            z.object({
              amount: baseUnits.refine((value) => value > 0n),
              recipient: address,
              memo: bytes32.optional(),
            }),
          )
          .min(1)
          // As mppx's own schema: more transfers would not fit the gas of one payment.
          .max(10)
          .optional(),
        supportedModes: z.array(z.string()).optional(),
      })
      .loose()
      .optional(),
  })
  // The primary recipient must keep a non-zero remainder.
  .refine(
    ({ amount, methodDetails }) =>
      (methodDetails?.splits ?? []).reduce((sum, split) => sum + split.amount, 0n) < amount ||
      !methodDetails?.splits,
  )

export type ChargeRequest = z.infer<typeof chargeRequestSchema>

/**
 * The Tempo charge request of `challenge` on chain `chainId`, or why it is not paid here: another
 * method or intent, a malformed request, another chain, or push mode only.
 *
 * @example
 * ```ts
 * const { request, reason } = parseChargeRequest(challenge, client.chain.id)
 * ```
 */
export function parseChargeRequest(
  challenge: Challenge.Challenge,
  chainId: number,
): RequestOrReason<ChargeRequest> {
  if (challenge.method !== 'tempo' || challenge.intent !== 'charge')
    return { reason: 'not a Tempo charge challenge' }
  const parsed = chargeRequestSchema.safeParse(challenge.request)
  if (!parsed.success) return { reason: 'malformed charge request' }
  const { methodDetails } = parsed.data
  if (methodDetails?.chainId !== undefined && methodDetails.chainId !== chainId)
    return { reason: otherChain(methodDetails.chainId, chainId) }
  // Push mode broadcasts before the server has accepted anything; only pull is paid here.
  if (methodDetails?.supportedModes && !methodDetails.supportedModes.includes('pull'))
    return { reason: 'push mode only (only pull is paid)' }
  return { request: parsed.data }
}

/**
 * Every transfer of the charge: the primary recipient gets `amount` minus the splits, each split
 * its own amount. The primary transfer carries the challenge's memo, else mppx's attribution memo
 * that binds the payment to the challenge (mppx servers require it).
 *
 * @example
 * ```ts
 * const transfers = transfersOf(challenge, request) // [{ recipient, amount, memo }, ...splits]
 * ```
 */
export function transfersOf(
  challenge: Challenge.Challenge,
  { amount, recipient, methodDetails }: ChargeRequest,
): PaymentQuote['transfers'] {
  if (amount === 0n) return []
  const splits = (methodDetails?.splits ?? []).map((split) => ({
    recipient: split.recipient,
    amount: split.amount,
    ...(split.memo ? { memo: split.memo } : {}),
  }))
  const primary = amount - splits.reduce((sum, split) => sum + split.amount, 0n)
  const memo = methodDetails?.memo ?? attributionMemo(challenge)
  return [{ recipient, amount: primary, memo }, ...splits]
}

/**
 * mppx's attribution memo (mppx 0.11 does not export its encoder): "mpp" tag (4 bytes of
 * keccak256("mpp")), version 1, a 10-byte fingerprint of the realm (the server id), 10 zero bytes
 * (no client id), and 7 bytes of keccak256 of the challenge id.
 */
function attributionMemo({ id, realm }: Challenge.Challenge): Hex {
  const fingerprint = (value: string, size: number) => slice(keccak256(stringToHex(value)), 0, size)
  return concat([
    fingerprint('mpp', 4),
    '0x01',
    fingerprint(realm, 10),
    `0x${'00'.repeat(10)}`,
    fingerprint(id, 7),
  ])
}
