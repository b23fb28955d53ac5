import { Session } from 'mppx/tempo'
import { type Address, getAbiItem, type Hex } from 'viem'
import { getLogs } from 'viem/actions'
import { Abis, Addresses } from 'viem/tempo'
import type { ChannelEntry } from '../stores/ChannelStore.js'
import { chainIdOf, latestBlock, onChain, sameId } from './shared.js'
import type { ChannelClient, ChannelProgress } from './types.js'

const { Channel } = Session.Precompile

const channelOpened = getAbiItem({ abi: Abis.tip20ChannelReserve, name: 'ChannelOpened' })

/** Blocks per `eth_getLogs` request: public RPCs cap the range of one. */
const logRange = 10_000n

/** A channel as its `ChannelOpened` log describes it. */
export type OpenedChannel = { entry: ChannelEntry; blockNumber: bigint }

/**
 * The channels the reserve opened for `payer` (or the one with `channelId`), from their
 * `ChannelOpened` logs, oldest first. Each log's channel id is checked against its descriptor, so
 * an RPC cannot pass off one channel as another. `entry.cumulativeAmount` is 0: logs do not say
 * what was signed.
 */
export async function openedChannels(
  client: ChannelClient,
  {
    payer,
    channelId,
    fromBlock = 0n,
    escrow = Addresses.tip20ChannelReserve,
    onProgress,
  }: {
    payer?: Address | undefined
    channelId?: Hex | undefined
    fromBlock?: bigint | undefined
    escrow?: Address | undefined
    onProgress?: ((event: ChannelProgress) => void) | undefined
  },
): Promise<OpenedChannel[]> {
  const chainId = await chainIdOf(client)
  const latest = await latestBlock(client)
  const found: OpenedChannel[] = []
  for (let from = fromBlock; from <= latest; from += logRange) {
    const to = from + logRange - 1n < latest ? from + logRange - 1n : latest
    onProgress?.({ type: 'scan', fromBlock: from, toBlock: to })
    const logs = await onChain(() =>
      getLogs(client, {
        address: escrow,
        event: channelOpened,
        args: { ...(payer ? { payer } : {}), ...(channelId ? { channelId } : {}) },
        fromBlock: from,
        toBlock: to,
        strict: true,
      }),
    )
    for (const { args, blockNumber } of logs) {
      const descriptor = {
        payer: args.payer,
        payee: args.payee,
        operator: args.operator,
        token: args.token,
        salt: args.salt,
        authorizedSigner: args.authorizedSigner,
        expiringNonceHash: args.expiringNonceHash,
      }
      if (!sameId(Channel.computeId({ ...descriptor, chainId, escrow }), args.channelId)) continue
      found.push({
        entry: {
          channelId: args.channelId,
          cumulativeAmount: 0n,
          deposit: args.deposit,
          descriptor,
          escrow,
          chainId,
          opened: true,
        },
        blockNumber,
      })
    }
  }
  return found
}
