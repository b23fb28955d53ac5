import type { Challenge, Receipt } from 'mppx'
import { Session } from 'mppx/tempo'
import { type Hex, isAddressEqual } from 'viem'
import { z } from 'zod'
import { minOf } from '../../internal/bigint.js'
import { baseUnitsSchema, hexSchema as hex } from '../../internal/wireSchemas.js'
import type { ChannelEntry } from '../../stores/ChannelStore.js'

const { Voucher } = Session.Precompile

const amount = baseUnitsSchema(96)

/** The parts of a session snapshot (draft-tempo-session-00 §Session Snapshot) that are used. */
const snapshotSchema = z.object({
  acceptedCumulative: amount,
  spent: amount,
  chainId: z.number().int(),
  channelId: hex,
  escrow: hex,
  descriptor: z.record(z.string(), z.unknown()),
  highestVoucher: z.object({ channelId: hex, cumulativeAmount: amount, signature: hex }),
})

/** What a verified snapshot proves of a channel at the server. */
export type ServerPosition = {
  /** The highest voucher the server holds: one this channel's signer signed. */
  held: bigint
  /** What the server says it served (its word only: never above `held`). */
  spent: bigint
}

/**
 * What `challenge`'s `methodDetails.sessionSnapshot` says of the channel of `entry`, if it has one
 * for it that holds up: the same channel, descriptor, reserve and chain, and a highest voucher
 * whose signature is the channel's signer's over exactly the amount the server claims to have
 * accepted. Anything else is ignored (`undefined`): a bare number is never trusted.
 *
 * @example
 * ```ts
 * const position = serverPosition(challenge, channel.entry)
 * if (position) console.log(position.held)
 * ```
 */
export function serverPosition(
  challenge: Challenge.Challenge,
  entry: ChannelEntry,
): ServerPosition | undefined {
  const details = (challenge.request as { methodDetails?: { sessionSnapshot?: unknown } })
    .methodDetails
  if (details?.sessionSnapshot === undefined) return undefined
  const parsed = snapshotSchema.safeParse(details.sessionSnapshot)
  if (!parsed.success) return undefined
  const snapshot = parsed.data
  const { highestVoucher: voucher } = snapshot
  const same = (a: Hex, b: Hex) => a.toLowerCase() === b.toLowerCase()
  if (
    !same(snapshot.channelId, entry.channelId) ||
    !same(voucher.channelId, entry.channelId) ||
    !same(snapshot.escrow, entry.escrow) ||
    snapshot.chainId !== entry.chainId ||
    voucher.cumulativeAmount !== snapshot.acceptedCumulative ||
    !sameDescriptor(snapshot.descriptor, entry.descriptor)
  )
    return undefined
  const valid = (() => {
    try {
      return Voucher.verifyVoucher(
        entry.escrow,
        entry.chainId,
        {
          channelId: entry.channelId,
          cumulativeAmount: voucher.cumulativeAmount,
          signature: voucher.signature,
        },
        entry.descriptor.authorizedSigner,
      )
    } catch {
      return false
    }
  })()
  if (!valid) return undefined
  const held = voucher.cumulativeAmount
  return { held, spent: minOf(snapshot.spent, held) }
}

/** Whether a snapshot's descriptor is the entry's, field by field. */
function sameDescriptor(given: Record<string, unknown>, descriptor: ChannelEntry['descriptor']) {
  const fields = ['payer', 'payee', 'operator', 'token', 'authorizedSigner'] as const
  for (const field of fields) {
    const value = given[field]
    if (typeof value !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(value)) return false
    if (!isAddressEqual(value as Hex, descriptor[field])) return false
  }
  for (const field of ['salt', 'expiringNonceHash'] as const) {
    const value = given[field]
    if (typeof value !== 'string' || value.toLowerCase() !== descriptor[field].toLowerCase())
      return false
  }
  return true
}

/** The parts of a session receipt (draft-tempo-session-00 §Session Receipt Schema) that are used. */
const receiptSchema = z.object({
  intent: z.literal('session'),
  channelId: hex,
  acceptedCumulative: amount,
  spent: amount,
})

/**
 * What a session receipt says of the channel of `entry`: the voucher the server holds and what it
 * served, in its word only (the ledger takes them only where they lower what it counts). A
 * receipt for another channel, or one without these figures, says nothing (`undefined`).
 *
 * @example
 * ```ts
 * const position = receiptPosition(receipt, channel.entry)
 * if (position) channel.ledger = Ledger.reconcile(channel.ledger, position)
 * ```
 */
export function receiptPosition(
  receipt: Receipt.Receipt | undefined,
  entry: ChannelEntry,
): ServerPosition | undefined {
  const parsed = receiptSchema.safeParse(receipt)
  if (!parsed.success) return undefined
  const { channelId, acceptedCumulative, spent } = parsed.data
  if (channelId.toLowerCase() !== entry.channelId.toLowerCase()) return undefined
  return { held: acceptedCumulative, spent }
}
