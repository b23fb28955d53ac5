import type { PaidRpcCounters } from '../../src/testing/index.js'

/** `PaidRpcCounters.payments` of a server that accepted no payment. */
export const noPayments: PaidRpcCounters['payments'] = {
  charge: 0,
  open: 0,
  voucher: 0,
  topUp: 0,
  close: 0,
}

/**
 * The counters of a charge server that answered `challenged` unpaid requests with a challenge and
 * forwarded `paid` paid ones: each paid call takes its probe and its paid resend.
 */
export const chargeCounters = ({
  challenged,
  paid,
}: {
  challenged: number
  paid: number
}): PaidRpcCounters => ({
  requests: challenged + paid,
  challenges: challenged,
  forwarded: paid,
  notifications: 0,
  payments: { ...noPayments, charge: paid },
})

/** The counters of a server that saw one request, answered it with a challenge, and nothing else. */
export const challengedOnce = chargeCounters({ challenged: 1, paid: 0 })
