import type { ChannelStore as MppxChannelStore } from 'mppx/client'

/**
 * A store of reusable session channels: mppx's client channel-store interface (`get`/`set`/`delete`
 * of its channel entries, keyed `payee:token:escrow:chainId`), so that mppx's own stores plug in
 * unchanged. viem-mpp's stores add the optional members.
 */
export type ChannelStore = MppxChannelStore & {
  /** The entries for one endpoint origin (scheme://host:port, never a path, query or userinfo). */
  forOrigin?(origin: string): MppxChannelStore
  /**
   * Every entry of the store, in every origin (and in the store itself: `origin` undefined), for
   * channel management (`listChannels`, `syncChannels`). Stores that cannot enumerate lack it.
   */
  list?(): Promise<ChannelRecord[]>
  /**
   * Runs `fn` holding a lease on `scope` that other PROCESSES sharing this store respect (e.g. a
   * lock file beside the database). `signal` ends the wait for it; once `fn` runs, the lease is
   * held until `fn` settles. Within a process, the provider serializes on its own. Stores without
   * it (memory, localStorage) need none.
   */
  lease?<value>(
    scope: string,
    fn: () => Promise<value>,
    options?: { signal?: AbortSignal | undefined },
  ): Promise<value>
}

/** A stored channel, as mppx's session client reads and writes it (`mppx/client` lacks the type). */
export type ChannelEntry = Parameters<MppxChannelStore['set']>[0]

/**
 * An entry of {@link ChannelStore.list}: the channel, its key, and the origin whose entries hold
 * it (`undefined`: the store's own entries, e.g. a channel recovered from the chain, whose logs
 * name no origin).
 */
export type ChannelRecord = { origin: string | undefined; key: string; entry: ChannelEntry }
