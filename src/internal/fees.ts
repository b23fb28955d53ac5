import type { Chain, Client, Hash, Transport } from 'viem'
import { getTransactionReceipt } from 'viem/actions'

/** Fees are priced in USD per 10^18 gas; fee tokens have 6 decimals. */
const feeUnitsPerToken = 10n ** 12n

/**
 * The most a prepared transaction's fee can cost, in base units of its fee token:
 * `gas × maxFeePerGas` (or `gasPrice`), rounded up.
 */
export function maxFeeOf({
  gas = 0n,
  maxFeePerGas,
  gasPrice,
}: {
  gas?: bigint | undefined
  maxFeePerGas?: bigint | undefined
  gasPrice?: bigint | undefined
}) {
  const feeUnits = gas * (maxFeePerGas ?? gasPrice ?? 0n)
  return (feeUnits + feeUnitsPerToken - 1n) / feeUnitsPerToken
}

/**
 * What a mined transaction's fee cost, in base units of its fee token (`gasUsed ×
 * effectiveGasPrice`, rounded up); `undefined` if the chain does not show it (not mined, or the
 * node could not be asked).
 *
 * @example
 * ```ts
 * const fee = await paidFeeOf(client, keccak256(signedTransaction))
 * ```
 */
export async function paidFeeOf(client: Client<Transport, Chain>, hash: Hash) {
  const receipt = await getTransactionReceipt(client, { hash }).catch(() => undefined)
  if (!receipt) return undefined
  const feeUnits = receipt.gasUsed * receipt.effectiveGasPrice
  return (feeUnits + feeUnitsPerToken - 1n) / feeUnitsPerToken
}
