import type { ChannelEntry, ChannelLedger, ChannelRecord } from '../../stores/ChannelStore.js'
import { entryOf, isStoredAmount } from '../../stores/entryJson.js'
import { ChannelStoreError } from '../../stores/errors.js'
import { isLive } from '../holder.js'

/**
 * A row of the `channels` table joined with its ledger row (the ledger's columns are `null` when
 * it has none: a row of mppx, Foundry, mpp-rs or an older viem-mpp).
 */
export type ChannelRow = {
  channel_id: string
  scope_key: string
  chain_id: number
  escrow_contract: string
  cumulative_amount: string
  deposit: string
  descriptor_json: string | null
  entry_json: string | null
  state: string
  mark: string | null
  signed: string | null
  spent: string | null
  lease_id: string | null
  lease_pid: number | null
  lease_host: string | null
  lease_started: string | null
  lease_expires: number | null
  opening_until: number | null
}

/** A row as the store reads it. */
export type StoredChannel = {
  record: ChannelRecord
  /** The namespace of its `scope_key` (an origin, or `''`: the store's own entries). */
  namespace: string
  /** The row's `channel_id`, as written (the key of both tables). */
  channelId: string
  state: string
  /** Whether a live holder leases it (whether or not its ledger is still believed). */
  leased: boolean
  /** Whether it has a ledger row at all. */
  hasLedger: boolean
}

/**
 * The states of a channel row: `active` (opened, mppx's only state), `opening` (added by a pool,
 * its open not known to have landed), `gone` (the server no longer takes it, though it may still
 * hold a deposit). Other tools may write others, which the pool leaves alone.
 */
export const states = { active: 'active', opening: 'opening', gone: 'gone' } as const

/**
 * mppx's `scope_key`, `<namespace>\n<key>`: the row that mppx, mpp-rs and Foundry read for a
 * scope, holding its first channel.
 *
 * @example
 * ```ts
 * canonicalKey('https://rpc.example', key) // 'https://rpc.example\n0xpayee:0xtoken:0xescrow:4217'
 * ```
 */
export function canonicalKey(namespace: string, key: string): string {
  return `${namespace}\n${key}`
}

/**
 * The `scope_key` of a further channel of a scope: `<namespace>\n<key>\n<channel id>`, never
 * NULL (mppx's schema upgrade fills NULL ones with the canonical key) and distinct from every
 * other (mppx's unique index), so that the tools reading one channel per scope never see it.
 *
 * @example
 * ```ts
 * pooledKey('https://rpc.example', key, '0xc1c1…')
 * ```
 */
export function pooledKey(namespace: string, key: string, channelId: string): string {
  return `${canonicalKey(namespace, key)}\n${channelId.toLowerCase()}`
}

/**
 * The bounds of the scope keys of the further channels of a scope (those starting with
 * `<namespace>\n<key>\n`), for a range scan of mppx's index on `scope_key`.
 *
 * @example
 * ```ts
 * const [low, high] = pooledRange(namespace, key)
 * ```
 */
export function pooledRange(namespace: string, key: string): [string, string] {
  const scope = canonicalKey(namespace, key)
  // '\v' is the character after '\n': every key of the scope's pool sorts below it.
  return [`${scope}\n`, `${scope}\v`]
}

/**
 * The namespace and key of a `scope_key`, canonical or pooled.
 *
 * @example
 * ```ts
 * scopeOf(pooledKey(origin, key, channelId)) // { namespace: origin, key, pooled: true }
 * ```
 */
export function scopeOf(scopeKey: string): { namespace: string; key: string; pooled: boolean } {
  const [namespace = '', key = '', pooled] = scopeKey.split('\n')
  return { namespace, key, pooled: pooled !== undefined }
}

/**
 * Reads a row: its entry as mppx reads it (`entry_json`, or the columns of a row without one;
 * `opened` is whether its state is `active`), its ledger, and its lease. A row that does not parse
 * throws a {@link ChannelStoreError} (`corrupt`) naming the channel: nothing is written.
 *
 * @example
 * ```ts
 * const { record, leased } = readRow(row, path)
 * ```
 */
export function readRow(row: ChannelRow, path: string): StoredChannel {
  const corrupt = (cause: unknown) =>
    new ChannelStoreError({ reason: 'corrupt', path, channelId: row.channel_id, cause })
  let entry: ChannelEntry
  try {
    entry = entryOfRow(row)
  } catch (error) {
    throw corrupt(error)
  }
  // A row whose id is not its entry's would have one channel's vouchers signed for another.
  if (entry.channelId.toLowerCase() !== row.channel_id.toLowerCase())
    throw corrupt(new Error(`The row of ${row.channel_id} holds the entry of ${entry.channelId}.`))
  const { namespace, key } = scopeOf(row.scope_key)
  const leased =
    row.lease_id !== null &&
    isLive({
      pid: row.lease_pid ?? undefined,
      host: row.lease_host ?? undefined,
      identity: row.lease_started ?? undefined,
      expiresAt: row.lease_expires ?? 0,
    })
  const ledger = ledgerOf(row, entry, leased, corrupt)
  return {
    record: { origin: namespace || undefined, key, entry, ledger },
    namespace,
    channelId: row.channel_id,
    state: row.state,
    leased,
    hasLedger: row.mark !== null,
  }
}

function entryOfRow(row: ChannelRow): ChannelEntry {
  return entryOf(
    row.entry_json === null
      ? {
          channelId: row.channel_id,
          cumulativeAmount: row.cumulative_amount,
          deposit: row.deposit,
          descriptor: JSON.parse(descriptorOf(row)),
          escrow: row.escrow_contract,
          chainId: row.chain_id,
        }
      : JSON.parse(row.entry_json),
    row.state === states.active,
  )
}

function descriptorOf({ descriptor_json }: ChannelRow) {
  if (descriptor_json === null) throw new Error('The row has neither an entry nor a descriptor.')
  return descriptor_json
}

/**
 * The row's ledger. It is believed only while its `mark` is the entry's `cumulativeAmount` (every
 * write of the store keeps them equal): a tool that knows no ledger, writing the row since, may
 * have signed above it, so the ledger is then unknown (`undefined`), as for a row with none.
 */
function ledgerOf(
  row: ChannelRow,
  entry: ChannelEntry,
  live: boolean,
  corrupt: (cause: unknown) => ChannelStoreError,
): ChannelLedger | undefined {
  if (row.mark === null) return undefined
  const [mark, signed, spent] = [row.mark, row.signed, row.spent].map((value) => {
    if (!isStoredAmount(value)) throw corrupt(new Error(`Bad ledger amount ${value}.`))
    return BigInt(value as string)
  }) as [bigint, bigint, bigint]
  if (mark !== entry.cumulativeAmount) return undefined
  return {
    mark,
    signed,
    spent,
    lease:
      row.lease_id === null
        ? undefined
        : {
            id: row.lease_id,
            pid: row.lease_pid ?? undefined,
            host: row.lease_host ?? undefined,
            expiresAt: row.lease_expires ?? 0,
            live,
          },
    openingUntil: row.opening_until ?? undefined,
  }
}
