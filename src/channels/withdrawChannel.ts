import { type Account, type Hex, type Log, WaitForTransactionReceiptTimeoutError } from 'viem'
import { waitForTransactionReceipt, writeContract } from 'viem/actions'
import { Actions } from 'viem/tempo'
import type { ChannelRecord, ChannelStore } from '../stores/ChannelStore.js'
import { ChannelError } from './errors.js'
import { openedChannels } from './opened.js'
import {
  assertPayer,
  chainTime,
  closedError,
  closedEvents,
  findRecord,
  gracePeriodOf,
  latestBlock,
  onChain,
  readState,
  removeRecord,
  reserveLogs,
  stateOf,
} from './shared.js'
import type { ChannelClient, ChannelProgress } from './types.js'

/** How long a withdraw waits for its transaction's receipt (ms). */
const receiptTimeout = 30_000
export type WithdrawChannelParameters = {
  /**
   * The store that holds the channel; its entry is removed once the deposit is back. Without one,
   * the channel is looked up in the reserve's `ChannelOpened` logs (a scan from block 0).
   */
  store?: ChannelStore | undefined
  channelId: Hex
  /** The payer: it sends `requestClose` and `withdraw`. */
  account: Account
  /** A client for the channel's chain, on an unpaid RPC. */
  client: ChannelClient
  onProgress?: ((event: ChannelProgress) => void) | undefined
}

export type WithdrawChannelReturnType =
  | {
      channelId: Hex
      state: 'closeRequested'
      /** Unix seconds (chain time) from which the deposit can be withdrawn: call again then. */
      withdrawableAt: number
      /** The `requestClose` sent by this call; undefined when the close was requested before. */
      txHash: Hex | undefined
    }
  | {
      channelId: Hex
      state: 'closed'
      /** What came back to the payer: the deposit less what the payee had settled. */
      refunded: bigint
      txHash: Hex | undefined
    }

/**
 * Takes a channel's deposit back without the server: TIP-1034's `requestClose`, then `withdraw`
 * once the reserve's close grace period (900 s) has passed by the chain's clock. Each call does
 * the next step the chain allows and says where the channel stands, so it is safe to call again
 * at any time: an open channel gets its close requested (once), a requested one is withdrawn once
 * withdrawable, and until then the call only says when (`withdrawableAt`, chain time). During the
 * grace period the payee can still settle the vouchers it holds; the rest comes back.
 *
 * A channel that is closed already throws {@link ChannelError} (`closed`); one of another payer,
 * `notPayer`. A step that fails because another process (or the payee's close) did it meanwhile
 * is not an error: the call says where the channel stands, the refund read from the chain.
 *
 * @example
 * ```ts
 * import { withdrawChannel } from 'viem-mpp'
 *
 * const result = await withdrawChannel({ store, channelId, account, client })
 * if (result.state === 'closeRequested') console.log('come back at', new Date(result.withdrawableAt * 1000))
 * else console.log('refunded', result.refunded)
 * ```
 */
export async function withdrawChannel({
  store,
  channelId,
  account,
  client,
  onProgress,
}: WithdrawChannelParameters): Promise<WithdrawChannelReturnType> {
  const record = await recordOf(store, client, channelId)
  const { entry } = record
  assertPayer(entry, account)
  // Before the state is read: a close by another process after it is in the logs from here.
  const fromBlock = await latestBlock(client, entry.channelId)
  const state = await readState(client, entry)
  if (stateOf(state) === 'closed') throw closedError(entry.channelId)
  const gracePeriod = await gracePeriodOf(client, entry.escrow)

  const send = async (label: 'requestClose' | 'withdraw') => {
    const { call } =
      label === 'requestClose' ? Actions.channel.requestClose : Actions.channel.withdraw
    // viem's actions always call the canonical reserve: the channel's own is named here.
    const hash = await onChain(
      () =>
        writeContract(client, {
          account,
          chain: client.chain,
          ...call({ channel: entry.descriptor }),
          address: entry.escrow,
        } as never),
      entry.channelId,
    ).catch((error: unknown) => {
      if (error instanceof ChannelError) throw error
      // A revert or a refused transaction (the fee, say): nothing was sent.
      throw new ChannelError({
        reason: 'notWithdrawable',
        message: `The ${label} transaction for channel ${entry.channelId} could not be sent.`,
        channelId: entry.channelId,
        cause: error,
      })
    })
    onProgress?.({ type: 'transaction', hash, label })
    const receipt = await onChain(
      // Bounded: a transaction the node took but never mines must not hold the caller forever.
      () => waitForTransactionReceipt(client, { hash, timeout: receiptTimeout }),
      entry.channelId,
    ).catch((error: unknown) => {
      if (!(error instanceof WaitForTransactionReceiptTimeoutError)) throw error
      throw new ChannelError({
        reason: 'notWithdrawable',
        message: `The ${label} transaction ${hash} was not mined within ${receiptTimeout / 1000} s; run again to see where the channel stands.`,
        channelId: entry.channelId,
        cause: error,
      })
    })
    if (receipt.status !== 'success')
      throw new ChannelError({
        reason: 'notWithdrawable',
        message: `The ${label} transaction ${hash} reverted.`,
        channelId: entry.channelId,
      })
    return { hash, receipt }
  }

  /**
   * Sends `label`, unless it fails because another process (or the payee, closing) did the step
   * meanwhile: then `undefined`, and the chain says where the channel stands.
   */
  const sendUnlessDone = (label: 'requestClose' | 'withdraw') =>
    send(label).catch(async (error: unknown) => {
      if (!(error instanceof ChannelError) || error.reason !== 'notWithdrawable') throw error
      const now = await readState(client, entry)
      const done = label === 'requestClose' ? now.closeRequestedAt !== 0 : stateOf(now) === 'closed'
      if (!done) throw error
      return undefined
    })

  /**
   * The channel is closed: by this call's `withdraw` (`sent`), or by another process's or the
   * payee's since `fromBlock`, whose `ChannelClosed` says what came back. The entry is removed.
   */
  const closedResult = async (sent: { hash: Hex; receipt: { logs: Log[] } } | undefined) => {
    const logs = sent?.receipt.logs ?? (await reserveLogs(client, entry, fromBlock))
    const [closed] = closedEvents(logs, entry.channelId)
    if (store && record.key !== undefined) await removeRecord(store, { ...record, key: record.key })
    return {
      channelId: entry.channelId,
      state: 'closed' as const,
      refunded: closed?.args.refundedToPayer ?? 0n,
      txHash: sent?.hash ?? closed?.transactionHash,
    }
  }

  if (state.closeRequestedAt === 0) {
    const sent = await sendUnlessDone('requestClose')
    const requested = await readState(client, entry)
    if (stateOf(requested) === 'closed') return closedResult(undefined)
    const withdrawableAt = requested.closeRequestedAt + gracePeriod
    onProgress?.({ type: 'waiting', until: withdrawableAt, label: 'close grace period' })
    return {
      channelId: entry.channelId,
      state: 'closeRequested',
      withdrawableAt,
      txHash: sent?.hash,
    }
  }

  const withdrawableAt = state.closeRequestedAt + gracePeriod
  if ((await chainTime(client)) < withdrawableAt) {
    onProgress?.({ type: 'waiting', until: withdrawableAt, label: 'close grace period' })
    return {
      channelId: entry.channelId,
      state: 'closeRequested',
      withdrawableAt,
      txHash: undefined,
    }
  }

  return closedResult(await sendUnlessDone('withdraw'))
}

/** The channel from the store, or without one from its `ChannelOpened` log (then with no key). */
async function recordOf(
  store: ChannelStore | undefined,
  client: ChannelClient,
  channelId: Hex,
): Promise<Omit<ChannelRecord, 'key'> & { key: string | undefined }> {
  if (store) return findRecord(store, channelId)
  const [opened] = await openedChannels(client, { channelId })
  if (opened) return { origin: undefined, key: undefined, entry: opened.entry }
  throw new ChannelError({
    reason: 'unknownChannel',
    message: `No channel ${channelId} in the store or on chain.`,
    channelId,
  })
}
