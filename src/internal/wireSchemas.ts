import type { Address, Hex } from 'viem'
import { z } from 'zod'

/** A 20-byte address, as hex. */
export const addressSchema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/) as unknown as z.ZodType<Address>

/** A 32-byte value (a channel id, a memo), as hex. */
export const bytes32Schema = z.string().regex(/^0x[0-9a-fA-F]{64}$/) as unknown as z.ZodType<Hex>

/** Bytes of any length (a signature, a salt), as hex. */
export const hexSchema = z.string().regex(/^0x[0-9a-fA-F]*$/) as unknown as z.ZodType<Hex>

/**
 * A base-10 integer string of base units (as MPP requests carry amounts), read as a bigint below
 * 2^`bits`: 96 for a TIP-1034 amount, 256 for a TIP-20 one; without `bits`, of any size up to 78
 * digits (a suggestion that is capped rather than refused).
 *
 * @example
 * ```ts
 * baseUnitsSchema(96).parse('1000') // 1000n
 * ```
 */
export function baseUnitsSchema(bits?: 96 | 256) {
  const digits = bits === 96 ? 29 : 78
  const decimal = z
    .string()
    .regex(new RegExp(`^\\d{1,${digits}}$`))
    .transform((value) => BigInt(value))
  return bits === undefined ? decimal : decimal.refine((value) => value < 2n ** BigInt(bits))
}
