import type { ChannelLedger, ChannelRecord } from '../../stores/ChannelStore.js'
import { entryOf, isStoredAmount } from '../../stores/entryJson.js'
import { ChannelStoreError } from '../../stores/errors.js'
import { type Holder, isLive } from '../holder.js'
import { channelFields } from './scripts.js'

/** A channel as the store reads it: its record, and what a claim needs. */
export type StoredChannel = {
  record: ChannelRecord
  /** Its id as stored (lower case): the key of its hash. */
  id: string
  /** Its fencing token: a claim succeeds only if no other claim moved it since. */
  fence: string
  /** Whether a live holder leases it. */
  leased: boolean
  /** Whether its lease is held by a process of this host that no longer runs. */
  holderDead: boolean
}

/** The holder as a channel's hash records it. */
const holderOf = (text: string | null | undefined): Partial<Holder> | undefined => {
  if (!text) return undefined
  const parsed = JSON.parse(text) as Partial<Holder>
  return typeof parsed === 'object' && parsed !== null ? parsed : undefined
}

/**
 * Reads a channel from what the `read` script returns (`[id, ...channelFields]`), at `now` (the
 * Redis clock, ms). A channel whose hash is not in the store's layout (another layout, written by
 * hand) throws a {@link ChannelStoreError} (`corrupt`) naming it: nothing is changed.
 *
 * @example
 * ```ts
 * const [now, rows] = await connection.run('read', keys, [])
 * const channels = rows.map((row) => readChannel(row, Number(now), location))
 * ```
 */
export function readChannel(row: unknown, now: number, location: string): StoredChannel {
  const [id, ...values] = row as [string, ...(string | null)[]]
  const corrupt = (cause: unknown) =>
    new ChannelStoreError({ reason: 'corrupt', path: location, channelId: id, cause })
  const fields = Object.fromEntries(channelFields.map((name, at) => [name, values[at] ?? null]))
  if (fields.v !== '1') throw corrupt(new Error(`Not a viem-mpp channel (layout ${fields.v}).`))
  try {
    const expires = Number(fields.expires)
    if (!Number.isSafeInteger(expires) || !/^\d+$/.test(fields.fence ?? ''))
      throw new Error('Bad lease fields.')
    if (!isStoredAmount(fields.mark)) throw new Error(`Bad mark ${fields.mark}.`)
    const opening = fields.opening ? Number(fields.opening) : undefined
    if (opening !== undefined && !Number.isSafeInteger(opening)) throw new Error('Bad opening.')
    const mark = BigInt(fields.mark)
    // The store keeps the channel's state in its entry; its amount is always the mark.
    const entry = { ...entryOf(JSON.parse(fields.entry ?? '')), cumulativeAmount: mark }
    if (entry.channelId.toLowerCase() !== id)
      throw new Error(`The hash of ${id} holds the entry of ${entry.channelId}.`)
    const holder = holderOf(fields.holder)
    // A lease holds until it expires on the Redis clock; a holder of this host that no longer
    // runs frees it at once (its pid is checked: see isLive).
    const current = holder !== undefined && expires > now
    const dead = current && !isLive({ ...holder, expiresAt: expires }, now)
    const live = current && !dead
    const ledger: ChannelLedger | undefined =
      fields.signed && fields.spent
        ? {
            mark,
            signed: amountOf(fields.signed),
            spent: amountOf(fields.spent),
            lease: holder && {
              id: fields.fence as string,
              pid: holder.pid,
              host: holder.host,
              expiresAt: expires,
              live,
            },
            openingUntil: opening,
          }
        : undefined
    return {
      record: { origin: fields.origin || undefined, key: fields.key ?? '', entry, ledger },
      id,
      fence: fields.fence as string,
      leased: live,
      holderDead: dead,
    }
  } catch (error) {
    throw corrupt(error)
  }
}

function amountOf(value: string) {
  if (!isStoredAmount(value)) throw new Error(`Bad amount ${value}.`)
  return BigInt(value)
}
