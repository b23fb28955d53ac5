import { type Address, formatUnits, isAddressEqual } from 'viem'
import { Addresses } from 'viem/tempo'

/** Decimals of every TIP-20 token, pathUSD included. */
const tip20Decimals = 6

/**
 * `amount` base units of `currency` for people: in whole units with the token's decimals,
 * named `pathUSD` for pathUSD and by a shortened address otherwise (`1.5 pathUSD`).
 *
 * @example
 * ```ts
 * formatAmount(1_500_000n, Addresses.pathUsd) // '1.5 pathUSD'
 * ```
 */
export function formatAmount(amount: bigint, currency: Address): string {
  const name = isAddressEqual(currency, Addresses.pathUsd)
    ? 'pathUSD'
    : `${currency.slice(0, 6)}…${currency.slice(-4)}`
  return `${formatUnits(amount, tip20Decimals)} ${name}`
}

/**
 * How long from `now` until `at` (both unix seconds), for people: `14m 59s`, `2h 0m`, or `now`.
 *
 * @example
 * ```ts
 * formatTimeLeft(1_000_900, 1_000_000) // '15m 0s'
 * ```
 */
export function formatTimeLeft(at: number, now: number): string {
  const seconds = at - now
  if (seconds <= 0) return 'now'
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  if (h > 0) return `${h}h ${m}m`
  return m > 0 ? `${m}m ${s}s` : `${s}s`
}

/**
 * `at` as a UTC time to the second, with the time left from `now` (both unix seconds; `now` is
 * the chain's time where known): `2026-12-01 23:10:00 UTC (in 14m 59s)`.
 *
 * @example
 * ```ts
 * formatWhen(1_000_900, 1_000_000) // '1970-01-12 14:01:40 UTC (in 15m 0s)'
 * ```
 */
export function formatWhen(at: number, now: number): string {
  const time = `${new Date(at * 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC`
  const left = formatTimeLeft(at, now)
  return left === 'now' ? `${time} (now)` : `${time} (in ${left})`
}

/**
 * Rows as a left-aligned text table under a header, columns two spaces apart.
 *
 * @example
 * ```ts
 * formatTable(['ID', 'STATE'], [['0x01', 'open']])
 * ```
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]) {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  )
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

/**
 * `value` as JSON, bigints as decimal strings of base units and `undefined` as `null` (so that
 * every documented field is present), two-space indented.
 *
 * @example
 * ```ts
 * toJson({ deposit: 1_000_000n }) // '{\n  "deposit": "1000000"\n}'
 * ```
 */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_, field) =>
      typeof field === 'bigint' ? field.toString() : field === undefined ? null : field,
    2,
  )
}
