/**
 * Key that `mppHttp` sets in its transport's value, so that a provider can refuse a client whose
 * transport is itself paid: paying for the reads and broadcasts of a payment would recurse.
 */
export const paidTransportMarker = 'mppPaid'

/** Whether `client` talks through an `mppHttp` transport. */
export function isPaidClient(client: { transport?: unknown }): boolean {
  const transport = client.transport as Record<string, unknown> | undefined
  return transport?.[paidTransportMarker] === true
}
