import { entryKey } from 'mppx/client'
import { type Address, isAddressEqual } from 'viem'
import type { ChannelEntry, ChannelStore } from '../stores/ChannelStore.js'
import { openedChannels } from './opened.js'
import { chainReader, namespaceOf, recordsOf, sameId, stateOf, summarize } from './shared.js'
import type { ChannelClient, ChannelProgress, ChannelSummary } from './types.js'

export type SyncChannelsParameters = {
  /** The store to repair (one with `list()`). */
  store: ChannelStore
  /** A client for the chain to read, on an unpaid RPC. */
  client: ChannelClient
  /** Whose channels: the payer's `ChannelOpened` logs are read. */
  payer: Address
  /**
   * Only channels whose vouchers this key signs (a `viem/tempo` access key's address). @default
   * every channel of `payer`
   */
  authorizedSigner?: Address | undefined
  /** The first block to read logs from. @default 0n */
  fromBlock?: bigint | undefined
  onProgress?: ((event: ChannelProgress) => void) | undefined
}

export type SyncChannelsReturnType = {
  /** Channels that were missing from the store and were written to it. */
  added: ChannelSummary[]
  /** Stored channels whose deposit the chain showed higher (a top-up the store missed). */
  updated: ChannelSummary[]
  /** Every channel of the payer still open (or close-requested) on chain, stored or not. */
  channels: ChannelSummary[]
}

/**
 * Rebuilds missing store entries from the chain: the payer's `ChannelOpened` logs (each checked
 * against its descriptor) and each channel's state now. Channels closed on chain are left out.
 *
 * Logs name no endpoint, so a recovered channel is written to the store's own entries (origin
 * unknown), under mppx's key `payee:token:escrow:chainId`: the session provider takes it up for
 * the first endpoint whose challenge has that payee, token, reserve and chain, and moves it to
 * that endpoint's origin. Its vouchers restart from the amount settled on chain; the provider
 * catches up with the server's highest voucher, one price at a time, before paying. One channel
 * per key is written (the newest); others are listed in `channels`, and `withdrawChannel` can take
 * their deposits back.
 *
 * @example
 * ```ts
 * import { syncChannels } from 'viem-mpp'
 * import { fileChannelStore } from 'viem-mpp/node'
 *
 * const { added } = await syncChannels({ store: fileChannelStore(), client, payer: account.address })
 * ```
 */
export async function syncChannels({
  store,
  client,
  payer,
  authorizedSigner,
  fromBlock,
  onProgress,
}: SyncChannelsParameters): Promise<SyncChannelsReturnType> {
  const records = await recordsOf(store)
  const opened = (await openedChannels(client, { payer, fromBlock, onProgress })).filter(
    ({ entry }) =>
      authorizedSigner === undefined ||
      isAddressEqual(entry.descriptor.authorizedSigner, authorizedSigner),
  )
  const read = chainReader(client)

  const added: ChannelSummary[] = []
  const updated: ChannelSummary[] = []
  const channels: ChannelSummary[] = []
  /** Keys of the store's own entries taken (by a stored channel, or one written here). */
  const taken = new Set(records.filter(({ origin }) => origin === undefined).map(({ key }) => key))
  // Newest first, so that of several unknown channels to one payee the newest is written.
  for (const { entry: found } of [...opened].reverse()) {
    const chain = await read(found)
    const { state } = chain
    if (stateOf(state) === 'closed') continue
    const stored = records.find(({ entry }) => sameId(entry.channelId, found.channelId))
    if (stored) {
      const namespace = namespaceOf(store, stored.origin)
      const summary = summarize(stored, chain)
      if (state.deposit > stored.entry.deposit) {
        // Read again: a provider may have signed on the channel (and written it) since the list.
        const current = await namespace.get(stored.key)
        if (current && sameId(current.channelId, found.channelId)) {
          if (current.deposit < state.deposit)
            await namespace.set({ ...current, deposit: state.deposit })
          updated.push(summary)
        }
      }
      channels.push(summary)
      continue
    }
    const entry: ChannelEntry = {
      ...found,
      cumulativeAmount: state.settled,
      deposit: state.deposit,
    }
    const key = entryKey(entry)
    const summary = summarize({ origin: undefined, entry }, chain)
    if (!taken.has(key)) {
      taken.add(key)
      await store.set(entry)
      added.push(summary)
    }
    channels.push(summary)
  }
  return { added, updated, channels }
}
