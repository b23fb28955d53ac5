/**
 * Why a provider whose client is on `clientChain` passes over a challenge for `chain`: the same
 * words for a charge and a session, naming the provider's client (the transport's own chain is
 * checked, in other words, before a provider is asked).
 *
 * @example
 * ```ts
 * otherChain(1337, 4217) // "chain 1337, but the provider's client is on chain 4217"
 * ```
 */
export function otherChain(chain: number, clientChain: number) {
  return `chain ${chain}, but the provider's client is on chain ${clientChain}`
}

/** A challenge's request as a provider reads it: decoded, or why the provider does not pay it. */
export type RequestOrReason<request> =
  | { request: request; reason?: undefined }
  | { request?: undefined; reason: string }
