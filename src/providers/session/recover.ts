import { Session } from 'mppx/tempo'
import type { RecoverParameters } from '../PaymentProvider.js'
import type { LiveChannel, SessionContext } from './channel.js'
import { Ledger } from './ledger.js'
import type { Scope } from './scope.js'
import { refreshDeposit } from './topUp.js'

/** What a payment was made with, as the provider remembers it per challenge. */
export type PaidWith = {
  scope: Scope
  /** The channel paid on; `undefined` for an open (or a take-up) still in flight. */
  channel?: LiveChannel | undefined
  /** The voucher amount signed, once it is. */
  amount?: (() => bigint | undefined) | undefined
}

/**
 * Whether a fresh challenge may succeed after the server rejected a session payment for
 * `reason`, doing what makes it so: a `410` for a channel still funded on chain sets it aside
 * (once per scope, so that a lying server cannot have a deposit locked per request) and one gone
 * from the chain leaves the store; a stale voucher raises the ledger's floor to what the server
 * can hold; a voucher that repeated the one held, for credit the server no longer has, gives the
 * credit up; a deposit the server finds exceeded is read again from the chain.
 *
 * @example
 * ```ts
 * const retry = await recoverSession(context, paidWith.get(challenge), 'staleVoucher', { retire, forget })
 * ```
 */
export async function recoverSession(
  context: SessionContext,
  { scope, channel, amount }: PaidWith,
  reason: RecoverParameters['reason'],
  {
    retire,
    forget,
  }: {
    /** Sets a channel aside for `close()`: the scope takes another. */
    retire: (scope: Scope, channel: LiveChannel) => void
    /** Drops what the provider caches for the scope (its pre-sent challenges). */
    forget: (scope: Scope) => void
  },
): Promise<boolean> {
  if (reason === 'channelGone') {
    // An open still in flight is never dropped: the server may not have processed it yet.
    if (!channel || scope.channel !== channel) return true
    const { deposit, settled, closeRequestedAt } = await Session.Precompile.Chain.getChannelState(
      context.client,
      channel.entry.channelId,
      channel.entry.escrow,
    )
    if (deposit > settled && closeRequestedAt === 0) {
      // A server that does not know a channel still funded and open on chain lost its records,
      // or lies: the channel is kept for close() and marked unusable, and one new channel is
      // opened in its place, not one per request (each would lock another deposit).
      if (scope.replaced) return false
      scope.replaced = true
      await channel.lease.update({ opened: false })
      retire(scope, channel)
      return true
    }
    scope.channel = undefined
    forget(scope)
    if (deposit === 0n) await channel.lease.remove()
    else {
      await channel.lease.update({ opened: false })
      await channel.lease.release()
    }
    return true
  }
  // The channel was replaced meanwhile: a fresh challenge is paid on the new one.
  if (!channel || scope.channel !== channel) return true
  if (reason === 'staleVoucher') {
    const signed = amount?.()
    if (signed === undefined) return false
    channel.ledger = Ledger.stale(channel.ledger, signed)
    return true
  }
  if (reason === 'insufficientBalance') {
    const signed = amount?.()
    if (signed === undefined) return false
    const ledger = Ledger.shortfall(channel.ledger, signed)
    if (ledger === channel.ledger) return false
    channel.ledger = ledger
    return true
  }
  if (reason === 'depositExceeded') {
    await refreshDeposit(context, channel)
    return true
  }
  return false
}
