import { z } from 'zod'
import type { ChannelEntry } from './ChannelStore.js'

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/)
const amount = z.string().regex(/^(\d+|0x[0-9a-fA-F]+)$/)
/**
 * mppx's stored entry (`serializeEntry`: amounts as strings). Fields beyond what the stores use
 * (to key, insert and sign) are kept as they are: other tools may add their own.
 */
const storedEntry = z.looseObject({
  channelId: z.string().regex(/^0x[0-9a-fA-F]{64}$/),
  cumulativeAmount: amount,
  deposit: amount,
  descriptor: z.looseObject({
    payer: address,
    payee: address,
    token: address,
    authorizedSigner: address,
    salt: z.string().regex(/^0x[0-9a-fA-F]*$/),
  }),
  escrow: address,
  chainId: z.number().int().nonnegative(),
  opened: z.boolean().optional(),
})

/**
 * `entry` as mppx stores it (its `serializeEntry` form: amounts as decimal strings), so that mppx
 * reads it as its own.
 *
 * @example
 * ```ts
 * kv.set(name, entryJson(entry))
 * ```
 */
export function entryJson(entry: ChannelEntry): string {
  return JSON.stringify({
    ...entry,
    cumulativeAmount: entry.cumulativeAmount.toString(),
    deposit: entry.deposit.toString(),
  })
}

/**
 * Reads a stored entry (parsed JSON, in {@link entryJson}'s form): throws if it is not one, so
 * that a damaged entry is reported rather than signed on. `opened` is the stored one unless
 * given (a store that keeps the channel's state beside the entry).
 *
 * @example
 * ```ts
 * const entry = entryOf(JSON.parse(text))
 * ```
 */
export function entryOf(value: unknown, opened?: boolean): ChannelEntry {
  const stored = storedEntry.parse(value)
  return {
    ...stored,
    cumulativeAmount: BigInt(stored.cumulativeAmount),
    deposit: BigInt(stored.deposit),
    opened: opened ?? stored.opened ?? false,
  } as ChannelEntry
}

/**
 * Whether `value` is a stored amount (decimal, or hex as other tools may write it).
 *
 * @example
 * ```ts
 * if (!isStoredAmount(row.mark)) throw corrupt()
 * ```
 */
export function isStoredAmount(value: unknown): value is string {
  return amount.safeParse(value).success
}
