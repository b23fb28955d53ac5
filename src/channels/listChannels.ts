import { type Address, isAddressEqual } from 'viem'
import type { ChannelRecord, ChannelStore } from '../stores/ChannelStore.js'
import { chainIdOf, chainReader, recordsOf, summarize } from './shared.js'
import type { ChannelClient, ChannelSummary } from './types.js'

export type ListChannelsParameters = {
  /** The store to read (one with `list()`: memory, localStorage, file). */
  store: ChannelStore
  /** A client for the channels' chain: each channel is then refreshed from the chain. */
  client?: ChannelClient | undefined
  /** Only this payer's channels. @default every channel in the store */
  payer?: Address | undefined
}

/**
 * The channels in a store, in every origin: deposit, what was signed, and — with `client` — what
 * is settled, whether a close was requested (and from when the deposit can be withdrawn), and
 * what the payer can still get back. Channels of another chain than `client`'s are listed as
 * the store has them.
 *
 * @example
 * ```ts
 * import { listChannels } from 'viem-mpp'
 * import { fileChannelStore } from 'viem-mpp/node'
 *
 * for (const channel of await listChannels({ store: fileChannelStore(), client }))
 *   console.log(channel.channelId, channel.state, channel.refundable)
 * ```
 */
export async function listChannels({
  store,
  client,
  payer,
}: ListChannelsParameters): Promise<ChannelSummary[]> {
  const records = (await recordsOf(store)).filter(
    ({ entry }) => payer === undefined || isAddressEqual(entry.descriptor.payer, payer),
  )
  const chainId = client && (await chainIdOf(client))
  const read = client && chainReader(client)
  const summaries: ChannelSummary[] = new Array(records.length)
  // A few reads at a time: a store of thousands of channels must not flood a public RPC.
  let next = 0
  const worker = async () => {
    for (let index = next++; index < records.length; index = next++) {
      const record = records[index] as ChannelRecord
      summaries[index] =
        read && record.entry.chainId === chainId
          ? summarize(record, await read(record.entry))
          : summarize(record)
    }
  }
  await Promise.all(Array.from({ length: Math.min(maxReads, records.length) }, worker))
  return summaries
}

/** Channels refreshed from the chain at once. */
const maxReads = 8
