import { formatUnits, type Hex, isAddressEqual } from 'viem'
import { Addresses } from 'viem/tempo'

/** TIP-20 tokens have 6 decimals. */
const tip20Decimals = 6

/**
 * `amount` of `token` for people: `0.001 pathUSD`, or the token's address for another.
 *
 * @example
 * ```ts
 * tokenAmount(2000n, Addresses.pathUsd) // '0.002 pathUSD'
 * ```
 */
export function tokenAmount(amount: bigint, token: string) {
  const name = isAddressEqual(token as Hex, Addresses.pathUsd) ? 'pathUSD' : token
  return `${formatUnits(amount, tip20Decimals)} ${name}`
}
