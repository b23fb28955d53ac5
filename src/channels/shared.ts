import { Session } from 'mppx/tempo'
import {
  type Account,
  type Address,
  BaseError,
  getAddress,
  type Hex,
  HttpRequestError,
  isAddressEqual,
  type Log,
  parseEventLogs,
  RpcRequestError,
  TimeoutError,
} from 'viem'
import { getBlock, getBlockNumber, getChainId, getLogs, readContract } from 'viem/actions'
import { Abis } from 'viem/tempo'
import { signerOf } from '../reserve/transactions.js'
import type { ChannelEntry, ChannelRecord, ChannelStore } from '../stores/ChannelStore.js'
import { ChannelStoreError } from '../stores/errors.js'
import { ChannelError } from './errors.js'
import type { ChannelClient, ChannelState, ChannelSummary } from './types.js'

const { Chain, Channel } = Session.Precompile

/** A channel's state on chain, as the reserve keeps it. */
export type OnChainState = { settled: bigint; deposit: bigint; closeRequestedAt: number }

/**
 * Runs a chain read or transaction, turning a failure to reach the RPC into a typed error (its
 * cause without the URL, which may hold an API key). Reverts and other errors pass as they are.
 */
export async function onChain<value>(
  fn: () => Promise<value>,
  channelId?: Hex | undefined,
): Promise<value> {
  try {
    return await fn()
  } catch (error) {
    const unreachable =
      error instanceof BaseError &&
      error.walk(
        (cause) =>
          cause instanceof HttpRequestError ||
          cause instanceof TimeoutError ||
          cause instanceof RpcRequestError,
      )
    if (!unreachable) throw error
    throw new ChannelError({
      reason: 'rpcUnreachable',
      message: 'The chain RPC could not be reached; nothing was changed.',
      channelId,
      cause: error,
    })
  }
}

/** The channel's state on chain (all zero once it is closed or withdrawn). */
export function readState(client: ChannelClient, entry: ChannelEntry): Promise<OnChainState> {
  return onChain(
    () => Chain.getChannelState(client, entry.channelId, entry.escrow),
    entry.channelId,
  )
}

/** The reserve's close grace period, in seconds (TIP-1034: 900). */
export async function gracePeriodOf(client: ChannelClient, escrow: Hex): Promise<number> {
  const seconds = await onChain(() =>
    readContract(client, {
      address: escrow,
      abi: Abis.tip20ChannelReserve,
      functionName: 'CLOSE_GRACE_PERIOD',
    }),
  )
  return Number(seconds)
}

/** The latest block's number, never a cached one: logs are read from it on. */
export function latestBlock(client: ChannelClient, channelId?: Hex | undefined): Promise<bigint> {
  return onChain(() => getBlockNumber(client, { cacheTime: 0 }), channelId)
}

/** The reserve's logs since `fromBlock`, for the close of `entry`'s channel done meanwhile. */
export function reserveLogs(client: ChannelClient, entry: ChannelEntry, fromBlock: bigint) {
  return onChain(
    () => getLogs(client, { address: entry.escrow, fromBlock, toBlock: 'latest' }),
    entry.channelId,
  )
}

/** The `ChannelClosed` events of `channelId` among `logs`. */
export function closedEvents(logs: Log[], channelId: Hex) {
  return parseEventLogs({
    abi: Abis.tip20ChannelReserve,
    logs,
    eventName: 'ChannelClosed',
  }).filter(({ args }) => sameId(args.channelId, channelId))
}

/** Removes `record`'s entry, unless its key holds another channel by now. */
export async function removeRecord(
  store: ChannelStore,
  { origin, key, entry }: Pick<ChannelRecord, 'origin' | 'key' | 'entry'>,
) {
  const namespace = namespaceOf(store, origin)
  const stored = await namespace.get(key)
  if (stored && sameId(stored.channelId, entry.channelId)) await namespace.delete(key)
}

/** The client's chain id: its chain's, else the node's. */
export function chainIdOf(client: ChannelClient): Promise<number> {
  return client.chain ? Promise.resolve(client.chain.id) : onChain(() => getChainId(client))
}

/** The chain's clock: the latest block's timestamp, which the reserve's grace period runs on. */
export async function chainTime(client: ChannelClient): Promise<number> {
  const { timestamp } = await onChain(() => getBlock(client, { blockTag: 'latest' }))
  return Number(timestamp)
}

/** Where the channel stands: a closed (or withdrawn) channel's deposit reads 0. */
export function stateOf({ deposit, closeRequestedAt }: OnChainState): ChannelState {
  if (deposit === 0n) return 'closed'
  return closeRequestedAt === 0 ? 'open' : 'closeRequested'
}

/** The summary of a stored channel, refreshed with its state on chain when one is given. */
export function summarize(
  { origin, entry, ledger }: Pick<ChannelRecord, 'origin' | 'entry' | 'ledger'>,
  chain?: { state: OnChainState; gracePeriod: number | undefined } | undefined,
): ChannelSummary {
  const deposit = chain ? chain.state.deposit : entry.deposit
  const settled = chain?.state.settled
  const state = chain ? stateOf(chain.state) : 'open'
  // Released by its last holder, the ledger is exact; otherwise the mark bounds what was signed.
  const exact = ledger !== undefined && ledger.lease === undefined
  const signed = exact ? ledger.signed : (ledger?.mark ?? entry.cumulativeAmount)
  const claimable = bigintMax(settled ?? 0n, signed)
  // Recovered from the chain (no origin, no ledger): what was signed on it is not known.
  const recovered = origin === undefined && ledger === undefined
  return {
    channelId: entry.channelId,
    origin,
    chainId: entry.chainId,
    // Checksummed: stores and logs spell addresses differently.
    escrow: getAddress(entry.escrow),
    payer: getAddress(entry.descriptor.payer),
    payee: getAddress(entry.descriptor.payee),
    authorizedSigner: getAddress(entry.descriptor.authorizedSigner),
    currency: getAddress(entry.descriptor.token),
    deposit,
    cumulativeAmount: signed,
    exact,
    lease: ledger?.lease && {
      pid: ledger.lease.pid,
      host: ledger.lease.host,
      live: ledger.lease.live,
    },
    acceptedAmount: undefined,
    settledAmount: settled,
    state,
    withdrawableAt:
      state === 'closeRequested' && chain?.gracePeriod !== undefined
        ? chain.state.closeRequestedAt + chain.gracePeriod
        : undefined,
    refundable:
      state === 'closed' || claimable >= deposit ? 0n : recovered ? undefined : deposit - claimable,
  }
}

/**
 * A reader of channels' state on chain, with the reserve's grace period once a close is
 * requested, for {@link summarize}. The grace period, a constant of the reserve's, is read once
 * per reserve however many channels ask.
 */
export function chainReader(client: ChannelClient) {
  const gracePeriods = new Map<string, Promise<number>>()
  const gracePeriod = (escrow: Address) => {
    const seconds = gracePeriods.get(escrow.toLowerCase()) ?? gracePeriodOf(client, escrow)
    gracePeriods.set(escrow.toLowerCase(), seconds)
    return seconds
  }
  return async (entry: ChannelEntry) => {
    const state = await readState(client, entry)
    return {
      state,
      gracePeriod:
        stateOf(state) === 'closeRequested' ? await gracePeriod(entry.escrow) : undefined,
    }
  }
}

/** Every entry of `store`, in every origin. */
export async function recordsOf(store: ChannelStore): Promise<ChannelRecord[]> {
  if (!store.list)
    throw new ChannelError({
      reason: 'unsupportedStore',
      message: 'This channel store cannot list its channels (it has no list()).',
      details: ['memoryChannelStore, localStorageChannelStore and fileChannelStore can.'],
    })
  return store.list()
}

/**
 * The stored record of `channelId`, wherever it is kept. An entry whose id is not its
 * descriptor's is corrupt: the chain is read by the id and transactions act on the descriptor,
 * so acting on it could close another channel than the one asked for.
 */
export async function findRecord(store: ChannelStore, channelId: Hex): Promise<ChannelRecord> {
  const record = (await recordsOf(store)).find(({ entry }) => sameId(entry.channelId, channelId))
  if (!record)
    throw new ChannelError({
      reason: 'unknownChannel',
      message: `No channel ${channelId} in the store.`,
      channelId,
      details: [
        'List the stored channels with listChannels(), or recover them with syncChannels().',
      ],
    })
  const { entry } = record
  const id = descriptorId(entry)
  if (id === undefined || !sameId(id, entry.channelId))
    throw new ChannelStoreError({
      reason: 'corrupt',
      cause: new Error(
        `The entry of channel ${entry.channelId} has ${id ? `the descriptor of ${id}` : 'no valid descriptor'}.`,
      ),
    })
  return record
}

/** The id of the channel `entry`'s descriptor describes; undefined if it describes none. */
function descriptorId(entry: ChannelEntry): Hex | undefined {
  try {
    return Channel.computeId({ ...entry.descriptor, chainId: entry.chainId, escrow: entry.escrow })
  } catch {
    return undefined
  }
}

/** The entries of `origin` (`undefined`: the store's own). */
export function namespaceOf(store: ChannelStore, origin: string | undefined) {
  return origin === undefined ? store : (store.forOrigin?.(origin) ?? store)
}

/** Refuses a channel that `account` does not pay, or whose vouchers another key signs. */
export function assertPayer(entry: ChannelEntry, account: Account, { signs = false } = {}) {
  const payer = isAddressEqual(entry.descriptor.payer, account.address)
  const signer = !signs || isAddressEqual(entry.descriptor.authorizedSigner, signerOf(account))
  if (payer && signer) return
  throw new ChannelError({
    reason: 'notPayer',
    message: payer
      ? `Channel ${entry.channelId} takes vouchers from ${entry.descriptor.authorizedSigner}, not from this key.`
      : `Channel ${entry.channelId} is paid by ${entry.descriptor.payer}, not by ${account.address}.`,
    channelId: entry.channelId,
  })
}

export function closedError(channelId: Hex) {
  return new ChannelError({
    reason: 'closed',
    message: `Channel ${channelId} is closed on chain already: nothing is left in it.`,
    channelId,
  })
}

export function sameId(a: Hex, b: Hex) {
  return a.toLowerCase() === b.toLowerCase()
}

const bigintMax = (a: bigint, b: bigint) => (a > b ? a : b)
