/**
 * Key that `mppHttp` sets in its transport's value, so that a provider can refuse a client whose
 * transport is itself paid: paying for the reads and broadcasts of a payment would recurse.
 */
export const paidTransportMarker = 'mppPaid'

/** Whether `client` talks through an `mppHttp` transport, directly or inside `fallback()`. */
export function isPaidClient(client: { transport?: unknown }): boolean {
  return isPaid(client.transport)
}

function isPaid(transport: unknown): boolean {
  if (!transport || typeof transport !== 'object') return false
  const { value, transports } = transport as { value?: unknown; transports?: unknown }
  return (
    (transport as Record<string, unknown>)[paidTransportMarker] === true ||
    (!!value && (value as Record<string, unknown>)[paidTransportMarker] === true) ||
    (Array.isArray(transports) && transports.some(isPaid))
  )
}
