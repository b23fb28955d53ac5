import type { Account, Hex } from 'viem'
import { redactUrl } from '../internal/redactUrl.js'
import { sendWithinOrigin } from '../internal/sendWithinOrigin.js'
import { isSocketUrl, socketFetch } from '../internal/socketFetch.js'
import type { ChannelRecord, ChannelStore } from '../stores/ChannelStore.js'
import { cooperativeClose } from './cooperativeClose.js'
import { ChannelError } from './errors.js'
import { assertPayer, findRecord, removeRecord } from './shared.js'
import type { ChannelClient } from './types.js'

export type CloseChannelParameters = {
  /** The store that holds the channel; its entry is removed once the chain shows it closed. */
  store: ChannelStore
  channelId: Hex
  /**
   * A URL of the server that sold the channel (the paid endpoint), on the origin the store
   * records for it (another is refused: `otherOrigin`). It is used for this request only, never
   * stored; errors show its origin only. Redirects are followed within that origin only. A
   * `ws://`/`wss://` URL closes over a WebSocket of its own, in-band (as `mppWebSocket` pays).
   */
  url: string
  /** The payer (a local account, or the `viem/tempo` access key that signs the channel's vouchers). */
  account: Account
  /** A client for the channel's chain, on an unpaid RPC. */
  client: ChannelClient
  /** @default globalThis.fetch */
  fetch?: typeof fetch | undefined
  /** How long each request to the server may take, in ms. @default 30_000 */
  timeout?: number | undefined
}

export type CloseChannelReturnType = {
  channelId: Hex
  /** What the payee got from the channel in all (earlier settlements included), from the chain's `ChannelClosed`. */
  settled: bigint
  /** What was returned to the payer, read from the chain's `ChannelClosed`. */
  refunded: bigint
  /** The close transaction, as found on chain. */
  txHash: Hex | undefined
}

/**
 * Cooperatively closes a stored channel through the server that sold it: the server settles
 * what it charged, in one transaction that refunds the rest of the deposit to the payer. The
 * close voucher is signed at the lowest amount the server takes — the amount settled on chain,
 * else the amount the server says it charged, never above what the store records as signed —
 * and the outcome is read from the chain's `ChannelClosed` event, not from the server's answer.
 * The store's entry is removed only once the chain shows the channel closed.
 *
 * A server that is unreachable, refuses, or claims a close the chain does not show throws a
 * {@link ChannelError} (`unreachable`, `serverRefused`, `serverLied`) with the store unchanged;
 * `withdrawChannel` then gets the deposit back without the server. A close the server did
 * although its answer was lost (or said otherwise) is found on chain and returned as done.
 *
 * The close voucher is never above the channel's mark, the most its ledger says may have been
 * signed (exactly what was signed, once the provider that paid on it released it).
 *
 * @example
 * ```ts
 * import { closeChannel } from 'viem-mpp'
 *
 * const { settled, refunded } = await closeChannel({ store, channelId, url, account, client })
 * ```
 */
export async function closeChannel({
  store,
  channelId,
  url,
  account,
  client,
  fetch: fetchFn = globalThis.fetch,
  timeout = 30_000,
}: CloseChannelParameters): Promise<CloseChannelReturnType> {
  const record = await findRecord(store, channelId)
  const { origin, entry } = record
  assertPayer(entry, account, { signs: true })
  const server = redactUrl(url)
  // A close voucher is for the server that sold the channel only: another origin could be anyone.
  // (Another program's row may name its origin in another spelling, or a URL.)
  const soldAt = origin === undefined ? undefined : redactUrl(origin)
  if (soldAt !== undefined && soldAt !== '<invalid URL>' && server !== soldAt)
    throw new ChannelError({
      reason: 'otherOrigin',
      message: `Channel ${entry.channelId} was bought from ${soldAt}, not from ${server}: no close voucher is sent there.`,
      channelId: entry.channelId,
    })
  const { settled, refunded, txHash } = await cooperativeClose({
    entry,
    account,
    client,
    server,
    most: signedAtMost(record),
    // No redirect to another origin is followed: a challenge may name its own credential header,
    // which fetch, unlike `Authorization`, would carry there.
    send: (headers) =>
      sendWithinOrigin(
        isSocketUrl(url) ? socketFetch({ timeout }) : fetchFn,
        url,
        { method: 'POST', headers },
        undefined,
        AbortSignal.timeout(timeout),
      ),
  })
  await removeRecord(store, record)
  return { channelId: entry.channelId, settled, refunded, txHash }
}

/** The most that may have been signed on the channel: its ledger's mark (the entry's amount). */
function signedAtMost(record: ChannelRecord) {
  return record.ledger?.mark ?? record.entry.cumulativeAmount
}
