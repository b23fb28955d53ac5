import type { Address, Chain, Client, Hex, Transport } from 'viem'

/**
 * A viem client for the channels' chain, on an unpaid RPC: reads, and the payer's transactions
 * (which need its `chain`). Without a `chain`, the chain id is asked of the node.
 */
export type ChannelClient = Client<Transport, Chain | undefined>

/**
 * Where a channel stands on chain: `open`; `closeRequested` by the payer (withdrawable once the
 * reserve's close grace period has passed); `closed` (closed or withdrawn: nothing left in it).
 */
export type ChannelState = 'open' | 'closeRequested' | 'closed'

/** One channel, as the store records it and (with a client) as the chain has it now. */
export type ChannelSummary = {
  channelId: Hex
  /** Endpoint origin the channel was bought from, when the store knows it (a synced one: not). */
  origin: string | undefined
  chainId: number
  escrow: Address
  payer: Address
  payee: Address
  authorizedSigner: Address
  /** The TIP-20 token. */
  currency: Address
  /** The deposit: the chain's with a client, else the store's. */
  deposit: bigint
  /**
   * The highest voucher signed on the channel: exactly, when `exact`; otherwise the most that may
   * have been signed (the mark written ahead while a holder pays on it or after it crashed, or the
   * figure another tool wrote). A channel recovered by `syncChannels` has no record of what was
   * signed: it shows what is settled on chain, and is not `exact`.
   */
  cumulativeAmount: bigint
  /** Whether `cumulativeAmount` is exactly the highest voucher signed (its last holder released it). */
  exact: boolean
  /**
   * The process holding the channel, if a lease is recorded: its pid and host, and whether the
   * store judges it alive (a dead holder's channel is free for the next one).
   */
  lease: { pid: number | undefined; host: string | undefined; live: boolean } | undefined
  /** What the server accepted, where known (stores do not record receipts; `closeChannel` learns it). */
  acceptedAmount: bigint | undefined
  /** Settled to the payee on chain (known with a client). */
  settledAmount: bigint | undefined
  state: ChannelState
  /** Unix seconds (chain time) from which `withdrawChannel` can take the deposit back: when `closeRequested`. */
  withdrawableAt: number | undefined
  /**
   * What the payer can still get back whatever the payee does with the vouchers it holds: the
   * deposit less the higher of what is settled and what was signed; 0 once closed. `undefined` for
   * a channel recovered from the chain, whose vouchers (its open carried one at least) no store
   * recorded: the payee may hold any of them.
   */
  refundable: bigint | undefined
}

/** Progress of a long operation, for a CLI or a UI. */
export type ChannelProgress =
  | { type: 'transaction'; hash: Hex; label: string }
  | { type: 'waiting'; until: number; label: string }
  | { type: 'scan'; fromBlock: bigint; toBlock: bigint }
