import type { Challenge } from 'mppx'
import { Session } from 'mppx/tempo'
import { PaymentRefusedError } from '../../errors.js'
import { maxOf, minOf } from '../../internal/bigint.js'
import { withinOrigin } from '../../internal/sendWithinOrigin.js'
import { raceSignal } from '../../internal/signal.js'
import { parseSessionRequest, type SessionRequest } from '../../reserve/sessionRequest.js'
import type { PreparedPayment, PrepareParameters } from '../PaymentProvider.js'
import { type LiveChannel, nextSettled, track, voucherCredential, voucherSlot } from './channel.js'
import type { Endpoint } from './endpoint.js'
import { Ledger } from './ledger.js'
import { quoteOf } from './quote.js'
import { acquire, catchUp, type Scope } from './scope.js'
import { receiptPosition } from './snapshot.js'
import { forget, remember, retire, type SessionState, scopeOf } from './state.js'
import { topUpPayment } from './topUp.js'

/**
 * Prepares the payment of a session challenge on its scope's channel: a voucher, or a top-up
 * with its voucher when the deposit cannot cover it, or (no usable channel) a take-up of a free
 * one or an open. It waits while the scope or the channel is busy (an open, a top-up, a take-up,
 * a close), and sets aside a channel spent up to `maxDeposit`. Its acceptance keeps the challenge
 * for the later calls to that URL to pay before they are asked.
 *
 * @example
 * ```ts
 * const payment = await prepareSessionPayment(state, { challenge, request, signal })
 * const authorization = await payment.authorize()
 * ```
 */
export async function prepareSessionPayment(
  state: SessionState,
  { challenge, request: paid, signal }: PrepareParameters,
): Promise<PreparedPayment> {
  const { context, cap, maxDeposit } = state
  const { request, reason } = parseSessionRequest(challenge, context.chainId)
  if (!request) throw new Error(`Not a payable session challenge: ${reason}.`)
  // Refused before anything is touched: a price no channel may hold changes no state.
  if (maxDeposit !== undefined && request.amount > maxDeposit)
    throw new PaymentRefusedError({
      reason: 'maxDeposit',
      amount: request.amount,
      currency: request.currency,
      limit: maxDeposit,
    })
  const scope = scopeOf(state, new URL(paid.url).origin, request)
  const endpoint: Endpoint = {
    url: paid.url,
    headers: paid.headers,
    fetch: paid.fetch ?? withinOrigin(globalThis.fetch),
  }
  const remembered = (payment: PreparedPayment): PreparedPayment => ({
    ...payment,
    async commit(receipt, outcome) {
      await payment.commit(receipt, outcome)
      if (outcome?.accepted && scope.channel) remember(state, scope, challenge, paid.url)
    },
  })
  for (;;) {
    if (scope.busy) {
      await raceSignal(scope.busy, signal)
      continue
    }
    const channel = scope.channel
    if (!channel) {
      const payment = await acquire(context, scope, {
        book: state.book,
        request,
        challenge,
        endpoint,
        signal,
        cap,
        deposit: openingDeposit(state, request),
        passedOver: state.passedOver,
      })
      if (!payment) continue
      state.paidWith.set(challenge, { scope })
      return remembered(payment)
    }
    if (channel.busy) {
      await raceSignal(channel.busy, signal)
      continue
    }
    if (channel.lease.lost) {
      // Another holder has the channel now: nothing more is signed on it here.
      scope.channel = undefined
      forget(state, scope)
      continue
    }
    channel.endpoint = endpoint
    if (channel.ledger.behind) {
      await catchUp(context, scope, channel, { signal, passedOver: state.passedOver })
      continue
    }
    // Payments prepared before this one and not signed yet come first: their vouchers are lower.
    const next = Ledger.next(channel.ledger, channel.unsigned + request.amount)
    // A channel that could not hold the next voucher even topped up to `maxDeposit` is spent:
    // once its payments in flight have settled, it is set aside for close() and another used,
    // so that `maxDeposit` bounds what each channel locks, not what a key may spend.
    if (next > cap) {
      if (channel.pending > 0) await raceSignal(nextSettled(channel), signal)
      else retire(state, scope, channel)
      continue
    }
    if (next <= channel.entry.deposit)
      return remembered(voucherPayment(state, scope, channel, request, challenge))
    state.paidWith.set(challenge, { scope, channel })
    const payment = await topUpPayment(context, {
      channel,
      request,
      challenge,
      additional: Session.Client.Machine.resolveAutomaticTopUp({
        deposit: channel.entry.deposit,
        maxDeposit: cap,
        requiredCumulative: next,
        suggestedDeposit: state.preferredDeposit ?? request.suggestedDeposit,
      }),
      signal,
    })
    return remembered(payment)
  }
}

/** The deposit of a new channel: the preferred one, else the server's, capped by `maxDeposit`. */
function openingDeposit({ preferredDeposit, cap }: SessionState, request: SessionRequest) {
  const wanted = preferredDeposit ?? request.suggestedDeposit ?? request.amount
  // At least one call's price; a greedy suggestion is capped, not obeyed.
  return minOf(maxOf(wanted, request.amount), cap)
}

/**
 * A call paid with a voucher on `channel`: its amount is allocated when it is signed, and its
 * outcome settles it. The receipt of a payment alone in flight reconciles the ledger with what the
 * server says it served (see {@link Ledger.reconcile}).
 */
function voucherPayment(
  state: SessionState,
  scope: Scope,
  channel: LiveChannel,
  request: SessionRequest,
  challenge: Challenge.Challenge,
): PreparedPayment {
  const { context } = state
  const settle = track(channel)
  const slot = voucherSlot(context, channel, request.amount)
  state.paidWith.set(challenge, { scope, channel, amount: () => slot.amount })
  return {
    quote: quoteOf(context, request, { amount: request.amount, deposit: 0n, fee: 0n }),
    authorize: async () => voucherCredential(context, challenge, channel, await slot.sign()),
    async commit(receipt) {
      slot.settle('served')
      const position = receiptPosition(receipt, channel.entry)
      if (position) channel.ledger = Ledger.reconcile(channel.ledger, position)
      settle()
    },
    async rollback() {
      slot.settle('refused')
      settle()
    },
  }
}
