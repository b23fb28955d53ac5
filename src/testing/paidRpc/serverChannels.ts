/**
 * The paid RPC's session channels as its server holds them: read for tests to assert against,
 * and settled on chain as a payee may at any time.
 */
import type { Store } from 'mppx/server'
import { Session } from 'mppx/tempo'
import type { Address, Chain, Client, Hex, LocalAccount, Transport } from 'viem'
import { waitForTransactionReceipt } from 'viem/actions'

/** A session channel as the server holds it. */
export type PaidRpcChannel = {
  /** The highest cumulative voucher accepted: what the payee can capture. */
  highestVoucher: bigint
  /** What the server charged on the channel (its price times the calls it served). */
  spent: bigint
  /** The calls it served on the channel. */
  units: number
  /** The deposit it last saw on chain. */
  deposit: bigint
}

/** The parts of mppx's stored session channel (`ChannelStore.State`) read here. */
type ServerChannel = {
  highestVoucherAmount: bigint
  highestVoucher: { cumulativeAmount: bigint; signature: Hex } | null
  spent: bigint
  units: number
  deposit: bigint
  escrowContract: Address
  descriptor?: Parameters<typeof Session.Precompile.Chain.settleOnChain>[1]
}

/**
 * What the server holds of channel `channelId`: the counterparty's truth, which a test compares
 * with what the client believes; `undefined` if it keeps no record of it.
 *
 * @example
 * ```ts
 * const held = await readChannel(channels, channelId)
 * expect(held?.highestVoucher).toBe(3000n)
 * ```
 */
export async function readChannel(
  channels: Store.AtomicStore,
  channelId: Hex,
): Promise<PaidRpcChannel | undefined> {
  const state = await channels.get(channelId.toLowerCase())
  if (!state) return undefined
  const { highestVoucherAmount, spent, units, deposit } = state as unknown as ServerChannel
  return { highestVoucher: highestVoucherAmount, spent, units, deposit }
}

/**
 * Settles the server's highest voucher of channel `channelId` on chain and waits for it to be
 * mined, so that a test can then read the chain; `undefined` if the server holds no voucher.
 *
 * @example
 * ```ts
 * const hash = await settleChannel(client, channels, channelId)
 * ```
 */
export async function settleChannel(
  client: Client<Transport, Chain, LocalAccount>,
  channels: Store.AtomicStore,
  channelId: Hex,
): Promise<Hex | undefined> {
  const state = (await channels.get(channelId.toLowerCase())) as ServerChannel | null
  const voucher = state?.highestVoucher
  if (!state?.descriptor || !voucher) return undefined
  const hash = await Session.Precompile.Chain.settleOnChain(
    client,
    state.descriptor,
    voucher.cumulativeAmount,
    voucher.signature,
    state.escrowContract,
  )
  await waitForTransactionReceipt(client, { hash })
  return hash
}
