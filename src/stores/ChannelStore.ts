import type { ChannelStore as MppxChannelStore } from 'mppx/client'

/**
 * A store of reusable session channels: mppx's client channel-store interface (`get`/`set`/`delete`
 * of its channel entries, keyed `payee:token:escrow:chainId`), so that mppx's own stores plug in
 * unchanged. viem-mpp's stores add the optional members; with a {@link ChannelStore.pool} a store
 * keeps an exact voucher ledger per channel and hands each channel to one holder at a time.
 */
export type ChannelStore = MppxChannelStore & {
  /** The entries for one endpoint origin (scheme://host:port, never a path, query or userinfo). */
  forOrigin?(origin: string): MppxChannelStore
  /**
   * Every channel of the store, in every origin (and in the store itself: `origin` undefined), for
   * channel management (`listChannels`, `syncChannels`). Stores that cannot enumerate lack it.
   */
  list?(): Promise<ChannelRecord[]>
  /**
   * The store's pool of channels: several per scope (origin, payee, token, reserve, chain), each
   * leased by one holder at a time, with its voucher ledger. A store without one keeps one channel
   * per scope (mppx's layout) for one process at a time.
   */
  pool?: ChannelPool | undefined
}

/** A stored channel, as mppx's session client reads and writes it (`mppx/client` lacks the type). */
export type ChannelEntry = Parameters<MppxChannelStore['set']>[0]

/**
 * A stored channel: its entry, its key, the origin whose entries hold it (`undefined`: the
 * store's own entries, e.g. a channel recovered from the chain, whose logs name no origin), and,
 * in a store with a {@link ChannelPool}, its ledger. The entry's `cumulativeAmount` is the
 * ledger's `mark`, so that a tool that knows nothing of the ledger never signs below a voucher
 * that may exist.
 */
export type ChannelRecord = {
  origin: string | undefined
  key: string
  entry: ChannelEntry
  /**
   * The channel's voucher ledger; `undefined` for a channel that no ledger-keeping store wrote
   * (another tool's row, an older layout, a channel recovered from the chain): what was signed on
   * it is then not known.
   */
  ledger?: ChannelLedger | undefined
}

/**
 * What a store records of the vouchers signed on a channel. While a holder pays on the channel,
 * `mark` is written ahead of what it signs (a write per several calls); when it releases the
 * channel, `mark` and `signed` are written exactly. After a crash, the highest voucher signed is
 * between `signed` and `mark`.
 */
export type ChannelLedger = {
  /** No voucher above this amount was signed on the channel. */
  mark: bigint
  /**
   * The highest voucher signed when the ledger was last written: exactly the highest signed when
   * no `lease` is held (the last holder released the channel).
   */
  signed: bigint
  /** The amount its holder counted as served (accepted, or of unknown outcome) when last written. */
  spent: bigint
  /** Who holds the channel, if anyone (possibly a holder that died without releasing it). */
  lease: LeaseHolder | undefined
  /**
   * Unix seconds (chain clock) until which the channel's open transaction may still land: set
   * while an open was sent and not known to have landed.
   */
  openingUntil: number | undefined
}

/** The holder of a lease on a channel. */
export type LeaseHolder = {
  /** Unique per lease taken. */
  id: string
  /** The holder's process id and host, where the store records them. */
  pid: number | undefined
  host: string | undefined
  /** Unix ms until which the lease holds unless renewed (a holder renews it while alive). */
  expiresAt: number
  /** Whether the store judges the holder alive now (a live holder's lease is never taken over). */
  live: boolean
}

/** What the current holder would write as the channel's exact ledger if its lease ended now. */
export type LedgerTally = { signed: bigint; spent: bigint }

/**
 * The channels of a store, several per scope, each leased by one holder at a time: a holder signs
 * vouchers on a channel only while it leases it, so that vouchers reach the server in the order
 * they were signed and the next holder starts exactly where the last one stopped.
 */
export type ChannelPool = {
  /**
   * The channels of scope `key` (mppx's `payee:token:escrow:chainId`) at `origin`, and those of no
   * origin with that key, that no live holder leases now: free ones, and ones whose holder died.
   */
  free(origin: string, key: string): Promise<ChannelRecord[]>
  /**
   * Leases the stored channel of `record` for this holder, atomically: `undefined` if a live
   * holder has it by now, or it is gone. A channel of no origin is moved to `origin`. `tally` is
   * what to write when the lease ends (on `release`, or at process exit where the store can).
   */
  claim(record: ChannelRecord, options: ClaimOptions): Promise<ChannelLease | undefined>
  /**
   * Stores a new channel at `origin`, leased by this holder, before its open is sent: its ledger
   * starts with `mark` (the open's voucher) and `openingUntil` (when the open can no longer land).
   */
  add(entry: ChannelEntry, options: AddOptions): Promise<ChannelLease>
  /**
   * Stores a channel found on chain (`syncChannels`), with no lease and no ledger, at `origin`
   * (`undefined`: the store's own entries), beside the scope's other channels: it never replaces
   * one. Returns whether it was added (`false`: the channel is stored already).
   */
  put(entry: ChannelEntry, options: { origin: string | undefined }): Promise<boolean>
}

export type ClaimOptions = {
  /** The origin the channel is used at. */
  origin: string
  /** The ledger to write when the lease ends: read at that moment. */
  tally: () => LedgerTally
}

export type AddOptions = ClaimOptions & {
  /** Unix seconds (chain clock) after which the open transaction can no longer land. */
  openingUntil: number
}

/** A lease on one channel of a {@link ChannelPool}. */
export type ChannelLease = {
  /** The channel as it was when leased (its ledger then, for the take-up). */
  readonly record: ChannelRecord
  /**
   * Writes the ledger's `mark` ahead (with the `tally` of the moment): once it resolves, vouchers
   * up to the mark it returns (the mark written) may be signed. Throws `ChannelStoreError`
   * (`leaseLost`) if another holder has the channel now, so that nothing is signed on a channel
   * that is not this holder's. A store with a fleet budget may write less than `mark`, never less
   * than `needed` (else it throws `ChannelStoreError` `budget`); others write `mark`.
   */
  raise(mark: bigint, needed?: bigint): Promise<bigint>
  /** Records changes to the entry: a new deposit (after a top-up), the open landed. */
  update(changes: { deposit?: bigint | undefined; opened?: boolean | undefined }): Promise<void>
  /** Ends the lease, writing the `tally` exactly (`mark` = `signed`). Idempotent. */
  release(): Promise<void>
  /** Removes the channel from the store (closed on chain, or its open never landed). */
  remove(): Promise<void>
  /** Whether another holder took the channel over (the lease ran out unrenewed). */
  readonly lost: boolean
}
