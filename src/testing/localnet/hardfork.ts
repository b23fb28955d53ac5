/** Tempo hardfork the localnet runs; anvil 1.7.1 knows none later than T4. */
export const hardfork = 't4'
