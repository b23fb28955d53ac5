import type { Hash, Hex } from 'viem'
import { cooperativeClose } from '../../channels/cooperativeClose.js'
import { ChannelError } from '../../channels/errors.js'
import { createDeadline } from '../../internal/deadline.js'
import { redactErrorInPlace, redactUrl } from '../../internal/redactUrl.js'
import { raceSignal } from '../../internal/signal.js'
import type { ChannelLease } from '../../stores/ChannelStore.js'
import type { Book } from './book.js'
import { drained, type LiveChannel, type SessionContext } from './channel.js'
import { decideLostOpen } from './open.js'
import { heldChannels, type Scope } from './scope.js'

/** How a provider's channels are closed or released: within `timeout` (ms), and `signal`. */
type EndOptions = {
  signal?: AbortSignal | undefined
  /** @default 30_000 */
  timeout?: number | undefined
  /** Drops what the provider caches for the scope (its pre-sent challenges). */
  forget: (scope: Scope) => void
}

/** What closing one channel did. */
export type ClosedChannel = { channelId: Hex; settled: bigint; refunded: bigint; txHash: Hash }

/**
 * Closes every channel of `scopes` cooperatively, one after the other, within one deadline: the
 * active one once its payments have ended (calls made meanwhile wait, then take another), those
 * set aside, and a lost open that has landed. A channel closed on chain leaves the store; one that
 * could not be closed stays, leased, and is named in the error thrown once all were tried.
 *
 * @example
 * ```ts
 * const closed = await closeChannels(context, [...scopes.values()], { timeout: 30_000, forget })
 * ```
 */
export async function closeChannels(
  context: SessionContext,
  scopes: readonly Scope[],
  { signal, timeout = 30_000, forget }: EndOptions,
): Promise<ClosedChannel[]> {
  const deadline = createDeadline(timeout, signal, (ms) => `close() did not end within ${ms} ms.`)
  const closed: ClosedChannel[] = []
  const failed: { channelId: Hex; error: unknown }[] = []
  // From now on, calls wait for the close, then take another channel: what was finding a channel
  // before is waited for here.
  let done!: () => void
  const closing = new Promise<void>((resolve) => {
    done = resolve
  })
  const before = scopes.map((scope) => {
    const busy = scope.busy
    scope.busy = closing
    return busy
  })
  try {
    for (const [index, scope] of scopes.entries()) {
      const channels = await channelsOf(context, scope, before[index], deadline.signal).catch(
        (error: unknown) => {
          failed.push({ channelId: scope.channel?.entry.channelId ?? '0x', error })
          return []
        },
      )
      for (const channel of channels) {
        const result = await closeOne(context, scope, channel, deadline.signal).catch(
          (error: unknown) => {
            failed.push({ channelId: channel.entry.channelId, error })
            return undefined
          },
        )
        if (result) closed.push(result)
      }
      forget(scope)
    }
  } finally {
    deadline.clear()
    for (const scope of scopes) if (scope.busy === closing) scope.busy = undefined
    done()
  }
  const [first] = failed
  if (first)
    throw new ChannelError({
      reason: 'notClosed',
      message: `${failed.length} channel(s) could not be closed and stay open on chain; ${closed.length} closed.`,
      channelId: first.channelId,
      details: [
        `Not closed: ${failed.map(({ channelId }) => channelId).join(', ')}.`,
        'closeChannel() later, or withdrawChannel() without the server, gets their deposits back.',
      ],
      // Kept as it is, class included (a ChannelError, a timeout), for the caller to find it.
      cause: first.error instanceof Error ? redactErrorInPlace(first.error) : first.error,
    })
  return closed
}

/** The scope's channels to close, once what was finding one (`busy`) has ended. */
async function channelsOf(
  context: SessionContext,
  scope: Scope,
  busy: Promise<void> | undefined,
  signal: AbortSignal,
) {
  if (busy) await raceSignal(busy, signal)
  if (scope.lost) {
    const { lost } = scope
    scope.lost = undefined
    const landed = await decideLostOpen(context, lost, { signal })
    if (landed) scope.retired.push(landed)
  }
  return heldChannels(scope)
}

/** Closes `channel` once its payments have ended; payments made meanwhile wait, then take another. */
async function closeOne(
  context: SessionContext,
  scope: Scope,
  channel: LiveChannel,
  signal: AbortSignal,
): Promise<ClosedChannel> {
  let done!: () => void
  const closing = new Promise<void>((resolve) => {
    done = resolve
  })
  channel.busy = closing
  try {
    await raceSignal(drained(channel), signal)
    const { endpoint, entry } = channel
    const result = await cooperativeClose({
      entry,
      account: context.payer.account,
      client: context.client,
      server: redactUrl(endpoint.url),
      // The server holds no voucher above what was signed here, and served what the ledger says.
      most: channel.ledger.signed,
      served: channel.ledger.spent,
      send: (credential) => {
        const headers = new Headers(endpoint.headers)
        headers.delete('content-type')
        headers.delete('content-length')
        for (const [name, value] of credential) headers.set(name, value)
        return endpoint.fetch(endpoint.url, { method: 'POST', headers, signal })
      },
    })
    await channel.lease.remove()
    if (scope.channel === channel) scope.channel = undefined
    scope.retired = scope.retired.filter((retired) => retired !== channel)
    return { channelId: entry.channelId, ...result }
  } finally {
    if (channel.busy === closing) channel.busy = undefined
    done()
  }
}

/**
 * Hands every channel of `scopes` back to the store, each once its payments in flight have ended
 * (so that the ledger written is exact), without closing any: the next holder goes on from there.
 *
 * @example
 * ```ts
 * await releaseChannels([...scopes.values()], { timeout: 30_000, forget })
 * ```
 */
export async function releaseChannels(
  scopes: Iterable<Scope>,
  { signal, timeout = 30_000, forget }: EndOptions,
): Promise<void> {
  const deadline = createDeadline(timeout, signal, (ms) => `release() did not end within ${ms} ms.`)
  try {
    for (const scope of scopes) {
      if (scope.busy) await raceSignal(scope.busy, deadline.signal).catch(() => {})
      const channels = heldChannels(scope)
      scope.channel = undefined
      scope.retired = []
      forget(scope)
      for (const channel of channels) {
        await raceSignal(drained(channel), deadline.signal).catch(() => {})
        await channel.lease.release()
      }
    }
  } finally {
    deadline.clear()
  }
}

/**
 * Releases the leases of providers that are garbage-collected without `release()`. It holds the
 * books' lease sets only: nothing in them refers back to a provider (a lease's tally reads its
 * channel's ledger cell, not the channel, whose endpoint leads to the transport and so to the
 * provider), or the provider could never be collected.
 */
const collected =
  typeof FinalizationRegistry === 'undefined'
    ? undefined
    : new FinalizationRegistry<ReadonlySet<ChannelLease>>((leases) => {
        for (const lease of [...leases]) lease.release().catch(() => {})
      })

/**
 * Releases the channels leased through `book` when `provider` is garbage-collected: a provider
 * dropped without `release()` does not keep its channels from other holders until its process
 * ends (and its lease renewals, if the store renews, stop).
 *
 * @example
 * ```ts
 * releaseWhenCollected(provider, book)
 * ```
 */
export function releaseWhenCollected(provider: object, book: Book): void {
  collected?.register(provider, book.held)
}
