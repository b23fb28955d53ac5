/**
 * The names of in-band JSON-RPC payment signalling (draft-payment-transport-mcp-00), for the
 * client's codec and the testing server alike.
 */
export const inBandProtocol = {
  /** The error of an unpaid request: `data.challenges` says how to pay. */
  paymentRequired: -32042,
  /** The error of a request whose credential was refused, with a fresh challenge. */
  verificationFailed: -32043,
  /** Where a request carries its credential: the root-level `_meta` (or `params._meta`). */
  credentialKey: 'org.paymentauth/credential',
  /** Where an answer carries its receipt: its root-level `_meta`. */
  receiptKey: 'org.paymentauth/receipt',
  /**
   * viem-mpp's in-band form of a session's management request (a top-up, a close: over HTTP, a
   * `POST` without a body): a request of this method, with no params, carrying the credential.
   * A server answers it `result: null` with the receipt, and forwards it nowhere.
   */
  manageMethod: 'org.paymentauth/manage',
} as const
