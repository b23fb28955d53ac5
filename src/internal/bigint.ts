// Math.max and Math.min do not take bigints.

/** The larger of two amounts. */
export function maxOf(a: bigint, b: bigint): bigint {
  return a > b ? a : b
}

/** The smaller of two amounts. */
export function minOf(a: bigint, b: bigint): bigint {
  return a < b ? a : b
}
