/**
 * The most one payment may cost when `mppHttp` pays with its default provider and no `maxAmount`
 * is given: 1 USD, in base units of a TIP-20 USD token (6 decimals). That provider pays with a key
 * found on the machine, for whatever server the transport points at, so it is capped by default.
 */
export const defaultMaxAmount = 1_000_000n

/**
 * The most a session channel of `mppHttp`'s default provider may hold: 1 USD (its opening deposit
 * and its top-ups together, in base units of a 6-decimal TIP-20 USD token), whatever deposit the
 * server suggests. The channel is kept in Tempo's channel database and reused by later runs;
 * when it is spent, the default provider refuses further session payments
 * (`PaymentRefusedError`, `maxDeposit`). Each deposit or top-up is also within `maxAmount`
 * (`defaultMaxAmount` unless given).
 */
export const defaultMaxDeposit = 1_000_000n
