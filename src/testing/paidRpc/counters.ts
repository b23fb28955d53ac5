/** What the server has seen, for assertions in tests. */
export type PaidRpcCounters = {
  /** HTTP requests received, paid or not. */
  requests: number
  /** 402 (or 410) answers sent. */
  challenges: number
  /** Requests forwarded to the upstream after a successful payment. */
  forwarded: number
  /** Subscription notifications relayed to WebSocket clients (never paid). */
  notifications: number
  /** Accepted payments by kind. */
  payments: {
    charge: number
    open: number
    voucher: number
    topUp: number
    close: number
  }
}

export function emptyCounters(): PaidRpcCounters {
  return {
    requests: 0,
    challenges: 0,
    forwarded: 0,
    notifications: 0,
    payments: { charge: 0, open: 0, voucher: 0, topUp: 0, close: 0 },
  }
}
