import type { Challenge } from 'mppx'
import { type Address, isAddressEqual } from 'viem'
import { Addresses } from 'viem/tempo'
import { z } from 'zod'
import { otherChain, type RequestOrReason } from '../internal/reasons.js'
import { addressSchema as address, baseUnitsSchema } from '../internal/wireSchemas.js'

const uint96 = baseUnitsSchema(96)
/** The deposit a server suggests, of any size: capped by the provider, not refused. */
const anyBaseUnits = baseUnitsSchema()

/** The parts of a TIP-1034 session request (draft-tempo-session-00, `sessionProtocol: "v2"`). */
const sessionRequestSchema = z.object({
  amount: uint96,
  currency: address,
  recipient: address,
  /**
   * The deposit the server suggests for a new channel; top-level in mppx's requests. A greedy
   * one is capped by the provider, so any size is taken.
   */
  suggestedDeposit: anyBaseUnits.optional(),
  methodDetails: z
    .object({
      chainId: z.number().int().optional(),
      escrowContract: address.optional(),
      sessionProtocol: z.string().optional(),
      operator: address.optional(),
      feePayer: z.boolean().optional(),
      feeToken: address.optional(),
    })
    .loose()
    .optional(),
})

/** A session challenge with its request decoded. */
export type ParsedSessionChallenge = { challenge: Challenge.Challenge; request: SessionRequest }

/** A session challenge's request, checked and decoded. */
export type SessionRequest = {
  /** Price of one call: each voucher's increment. */
  amount: bigint
  currency: Address
  recipient: Address
  suggestedDeposit: bigint | undefined
  chainId: number
  escrow: Address
  operator: Address | undefined
  feePayer: boolean
  feeToken: Address | undefined
}

/**
 * Decodes the session request of `challenge`, or says why it is not paid here: only TIP-1034
 * precompile sessions (`sessionProtocol: "v2"`) on the client's chain, with the canonical channel
 * reserve as escrow, are. Another escrow would hold the deposit under rules nobody checked.
 */
export function parseSessionRequest(
  challenge: Challenge.Challenge,
  chainId: number,
): RequestOrReason<SessionRequest> {
  if (challenge.method !== 'tempo' || challenge.intent !== 'session')
    return { reason: 'not a Tempo session challenge' }
  const parsed = sessionRequestSchema.safeParse(challenge.request)
  if (!parsed.success) return { reason: 'malformed session request' }
  const { methodDetails = {}, ...request } = parsed.data
  const { sessionProtocol, escrowContract } = methodDetails
  if (sessionProtocol === undefined)
    return { reason: 'no sessionProtocol (only TIP-1034 sessions, "v2", are paid)' }
  if (sessionProtocol !== 'v2')
    return { reason: `session protocol "${sessionProtocol}" (only "v2" is paid)` }
  if (methodDetails.chainId === undefined) return { reason: 'no chainId' }
  if (methodDetails.chainId !== chainId)
    return { reason: otherChain(methodDetails.chainId, chainId) }
  if (escrowContract === undefined) return { reason: 'no escrowContract' }
  if (!isAddressEqual(escrowContract, Addresses.tip20ChannelReserve))
    return {
      reason: `escrow ${escrowContract} is not the canonical TIP-1034 channel reserve (${Addresses.tip20ChannelReserve})`,
    }
  if (request.amount === 0n) return { reason: 'a zero price' }
  return {
    request: {
      ...request,
      suggestedDeposit: request.suggestedDeposit,
      chainId,
      escrow: escrowContract,
      operator: methodDetails.operator,
      feePayer: methodDetails.feePayer === true,
      feeToken: methodDetails.feeToken,
    },
  }
}
