/** The clock in unix seconds, as transactions, keys and channels count time. */
export const nowInSeconds = () => Math.floor(Date.now() / 1000)

/**
 * How long a payment transaction (a charge, a channel's open or top-up) stays valid (s), as mppx
 * signs it: an open whose answer is lost is known not to have landed once this has passed.
 */
export const transactionLifetime = 25

/** A prepared transaction with less validity left than this (s) is prepared again before signing. */
export const minValidityLeft = 10
