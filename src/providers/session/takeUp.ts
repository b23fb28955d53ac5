import type { Challenge } from 'mppx'
import { Session } from 'mppx/tempo'
import { getBlock } from 'viem/actions'
import { raceSignal } from '../../internal/signal.js'
import { classifyRejection, readProblem } from '../../Problem.js'
import type { SessionRequest } from '../../reserve/sessionRequest.js'
import type { ChannelLease } from '../../stores/ChannelStore.js'
import {
  type LiveChannel,
  liveChannel,
  type SessionContext,
  signOutside,
  voucherCredential,
} from './channel.js'
import { type Endpoint, manage, sessionChallenges } from './endpoint.js'
import { Ledger } from './ledger.js'
import { serverPosition } from './snapshot.js'

const { Chain } = Session.Precompile

/**
 * The most vouchers a search for the server's highest one sends: it holds at most that many
 * prices above where the search starts (a server claiming every one is stale holds no more).
 */
const maxSearch = 100

/** How a stored channel, once leased, is taken into use. */
export type TakeUp =
  /** Its position is known: it pays at once. */
  | { kind: 'ready'; channel: LiveChannel }
  /**
   * Its position is not known and the server sends no snapshot: vouchers one price apart from
   * `from` find the server's highest (after the spending policy approved the call: they are signed).
   */
  | { kind: 'search'; channel: LiveChannel; from: bigint; steps: number }
  /** Not usable (closed, closing, an open that never landed): the lease was ended. */
  | { kind: 'skip' }

/**
 * Takes up the channel of `lease`. A ledger its last holder released is exact: the channel goes
 * on from it, with no request. Otherwise (a holder that died, another tool's row, a channel
 * recovered from the chain) the chain says whether it is usable, and the server's snapshot
 * (asked with `Payment-Session`) where it stands; without one, a search is planned.
 *
 * @example
 * ```ts
 * const taken = await takeUp(context, { lease, endpoint, request, signal })
 * if (taken.kind === 'ready') pay(taken.channel)
 * ```
 */
export async function takeUp(
  context: SessionContext,
  {
    lease,
    endpoint,
    request,
    signal,
  }: { lease: ChannelLease; endpoint: Endpoint; request: SessionRequest; signal: AbortSignal },
): Promise<TakeUp> {
  const { entry, ledger } = lease.record
  if (ledger && !ledger.lease && ledger.openingUntil === undefined && entry.opened) {
    const exact = Ledger.create({ spent: ledger.spent, signed: ledger.signed, mark: ledger.mark })
    return {
      kind: 'ready',
      channel: liveChannel({ entry, cell: { ledger: exact }, lease, endpoint }),
    }
  }
  const state = await raceSignal(
    Chain.getChannelState(context.client, entry.channelId, entry.escrow),
    signal,
  )
  if (state.deposit === 0n) {
    const opening = ledger?.openingUntil ?? (entry.opened ? undefined : Number.POSITIVE_INFINITY)
    // An open that may still land stays for whoever can wait for it; one that cannot, or a
    // channel closed since, leaves the store.
    if (opening !== undefined && (await chainTime(context, signal)) <= opening)
      await lease.release()
    else await lease.remove()
    return { kind: 'skip' }
  }
  if (state.closeRequestedAt !== 0) {
    await lease.update({ opened: false })
    await lease.release()
    return { kind: 'skip' }
  }
  const mark = ledger?.mark ?? entry.cumulativeAmount
  const start = (spent: bigint, signed: bigint, floor?: bigint) =>
    liveChannel({
      entry: { ...entry, deposit: state.deposit, opened: true },
      cell: { ledger: Ledger.create({ spent, signed, mark, floor }) },
      lease,
      endpoint,
    })
  const position = await askPosition(context, { endpoint, entry, signal })
  if (position) {
    const channel = start(position.spent, position.held, position.held)
    if (!entry.opened || ledger?.openingUntil !== undefined)
      await lease.update({ opened: true, deposit: state.deposit })
    return { kind: 'ready', channel }
  }
  // From what is certainly held (settled on chain, what the last holder counted as served) up
  // to the mark; another tool's row or an older layout: up to `maxSearch` prices below its mark.
  const floor =
    ledger?.spent ??
    (mark > request.amount * BigInt(maxSearch) ? mark - request.amount * BigInt(maxSearch) : 0n)
  const from = floor > state.settled ? floor : state.settled
  const steps = Math.min(maxSearch, Number((mark - from) / request.amount) + 1)
  const channel = start(from, from)
  return { kind: 'search', channel, from, steps: ledger ? steps : maxSearch }
}

/**
 * The server's verified position on the channel, from the snapshot of a fresh challenge asked
 * about it (`Payment-Session`); `undefined` if the server sends none that holds up.
 */
export async function askPosition(
  context: SessionContext,
  {
    endpoint,
    entry,
    signal,
  }: { endpoint: Endpoint; entry: LiveChannel['entry']; signal: AbortSignal },
) {
  const challenges = await raceSignal(
    sessionChallenges(endpoint, {
      chainId: context.chainId,
      channelId: entry.channelId,
      accepts: ({ request: offered }) =>
        offered.recipient.toLowerCase() === entry.descriptor.payee.toLowerCase() &&
        offered.currency.toLowerCase() === entry.descriptor.token.toLowerCase(),
      signal,
    }),
    signal,
  ).catch(() => [])
  for (const challenge of challenges) {
    const position = serverPosition(challenge, entry)
    if (position) return position
  }
  return undefined
}

/** Why a search for the server's highest voucher gave up. */
export type SearchFailure = 'tooFarBehind' | 'channelGone' | 'spent' | 'refused'

/**
 * Finds the server's highest voucher on a channel it sends no snapshot of: vouchers one price
 * apart from `from`, each sent without a body (which a server takes as a voucher update, not a
 * call), until one is accepted. The server rejects those below its highest as stale and accepts
 * its own highest again (an idempotent retry), so the search ends there, or less than a price
 * above it. Returns the amount accepted, or why it gave up.
 */
export async function search(
  context: SessionContext,
  {
    channel,
    challenge,
    from,
    steps,
    price,
    signal,
  }: {
    channel: LiveChannel
    challenge: Challenge.Challenge
    from: bigint
    steps: number
    price: bigint
    signal: AbortSignal
  },
): Promise<{ found: bigint } | { failure: SearchFailure }> {
  const { entry } = channel
  // A zero voucher is no voucher: from nothing held, the first one worth sending is one price.
  const start = from > 0n ? from : price
  for (let step = 0; step < steps; step++) {
    const amount = start + price * BigInt(step)
    if (amount > entry.deposit) return { failure: 'spent' }
    const signature = await signOutside(context, channel, amount, price)
    const authorization = voucherCredential(context, challenge, channel, { amount, signature })
    const answer = await manage(channel.endpoint, {
      credential: { challenge, authorization },
      signal,
    })
    const problem = await readProblem(answer)
    if (answer.ok) return { found: amount }
    const rejection = classifyRejection(answer.status, problem)
    if (rejection === 'channelGone') return { failure: 'channelGone' }
    if (rejection !== 'staleVoucher') return { failure: 'refused' }
  }
  return { failure: 'tooFarBehind' }
}

/** The chain's clock: the latest block's timestamp, which expiring transactions are judged by. */
export async function chainTime(context: SessionContext, signal: AbortSignal) {
  const { timestamp } = await raceSignal(getBlock(context.client, { blockTag: 'latest' }), signal)
  return Number(timestamp)
}
