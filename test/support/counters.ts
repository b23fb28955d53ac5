import type { PaidRpcCounters } from '../../src/testing/index.js'

/** `PaidRpcCounters.payments` of a server that accepted no payment. */
export const noPayments: PaidRpcCounters['payments'] = {
  charge: 0,
  open: 0,
  voucher: 0,
  topUp: 0,
  close: 0,
}

/** The counters of a server that saw one request, answered it with a challenge, and nothing else. */
export const challengedOnce: PaidRpcCounters = {
  requests: 1,
  challenges: 1,
  forwarded: 0,
  notifications: 0,
  payments: noPayments,
}
