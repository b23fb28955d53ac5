import type { Challenge } from 'mppx'
import { type Hex, isAddressEqual } from 'viem'
import { RecoveredChannelError } from '../../errors.js'
import { maxOf } from '../../internal/bigint.js'
import { redactErrorInPlace } from '../../internal/redactUrl.js'
import { raceSignal } from '../../internal/signal.js'
import type { SessionRequest } from '../../reserve/sessionRequest.js'
import type { ChannelRecord } from '../../stores/ChannelStore.js'
import type { PreparedPayment } from '../PaymentProvider.js'
import type { Book } from './book.js'
import {
  drained,
  type LedgerCell,
  type LiveChannel,
  occupy,
  type SessionContext,
  tallyOf,
  track,
  voucherCredential,
  voucherSlot,
} from './channel.js'
import type { Endpoint } from './endpoint.js'
import { Ledger } from './ledger.js'
import { decideLostOpen, type LostOpen, openPayment } from './open.js'
import { quoteOf } from './quote.js'
import { askPosition, search, takeUp } from './takeUp.js'

/**
 * The channels of one origin for one payee, token, reserve and chain (mppx's channel key), in
 * this provider: the one it pays on now, leased from the store, and those it set aside.
 */
export type Scope = {
  origin: string
  /** mppx's key `payee:token:escrow:chainId`. */
  key: string
  /** The channel payments go on. */
  channel: LiveChannel | undefined
  /** A channel being found, taken up or opened: payments wait for it to settle. */
  busy: Promise<void> | undefined
  /** An open sent and not accepted, which the chain decides before any other is opened. */
  lost: LostOpen | undefined
  /** Channels set aside (spent to `maxDeposit`, or unknown to the server), kept for `close()`. */
  retired: LiveChannel[]
  /**
   * Whether a channel still funded was set aside because the server disowned it (a `410`, or a
   * claim to hold vouchers never signed): it is replaced once only, so that a lying server cannot
   * have a deposit locked per request.
   */
  replaced: boolean
}

/** Every channel `scope` holds: those set aside, then the one it pays on. */
export function heldChannels(scope: Scope): LiveChannel[] {
  return [...scope.retired, ...(scope.channel ? [scope.channel] : [])]
}

/** What finding a channel for a scope needs. */
export type AcquireParameters = {
  book: Book
  request: SessionRequest
  challenge: Challenge.Challenge
  endpoint: Endpoint
  signal: AbortSignal
  /** The most a channel may hold (`maxDeposit`). */
  cap: bigint
  /** The deposit of a new channel. */
  deposit: bigint
  /** Channels this provider gave up on: not taken up again. */
  passedOver: Set<Hex>
}

/**
 * Finds the scope a channel, one caller at a time: a lost open the chain has decided, else a free
 * channel of the store (taken up exactly where its last holder stopped), else a new one. Returns
 * the payment that opens it (or catches up with the server first), or `undefined` once
 * `scope.channel` can pay.
 *
 * @example
 * ```ts
 * const payment = await acquire(context, scope, parameters)
 * if (!payment) pay(scope.channel)
 * ```
 */
export async function acquire(
  context: SessionContext,
  scope: Scope,
  parameters: AcquireParameters,
): Promise<PreparedPayment | undefined> {
  const finish = occupy(scope)
  try {
    const { signal } = parameters
    if (scope.lost) {
      const landed = await decideLostOpen(context, scope.lost, { signal })
      scope.lost = undefined
      if (landed) {
        scope.channel = landed
        finish()
        return undefined
      }
    }
    for (const record of await parameters.book.free(scope.origin, scope.key)) {
      if (!fits(context, record, parameters)) continue
      const payment = await takeUpRecord(context, scope, record, parameters, finish)
      if (payment === 'skipped') continue
      if (payment === 'ready') {
        finish()
        return undefined
      }
      return payment
    }
    return await openPayment(context, {
      ...parameters,
      origin: scope.origin,
      onOpened: (channel) => {
        scope.channel = channel
      },
      onLost: (lost) => {
        scope.lost = lost
      },
      onEnd: finish,
    })
  } catch (error) {
    finish()
    throw error
  }
}

/**
 * Whether a stored channel is one this account can pay on for the call: a store may be shared
 * by several wallets, and an entry's key names neither payer nor signer.
 */
function fits(
  context: SessionContext,
  record: ChannelRecord,
  { request, cap, passedOver }: AcquireParameters,
) {
  const { entry } = record
  const mark = record.ledger?.mark ?? entry.cumulativeAmount
  return (
    entry.chainId === context.chainId &&
    isAddressEqual(entry.descriptor.payer, context.payer.address) &&
    isAddressEqual(entry.descriptor.authorizedSigner, context.payer.signer) &&
    !passedOver.has(entry.channelId.toLowerCase() as Hex) &&
    mark + request.amount <= cap
  )
}

/** Leases and takes up a stored channel: `'ready'` (the scope's now), `'skipped'`, or the payment that searches first. */
async function takeUpRecord(
  context: SessionContext,
  scope: Scope,
  record: ChannelRecord,
  parameters: AcquireParameters,
  finish: () => void,
): Promise<PreparedPayment | 'ready' | 'skipped'> {
  const { book, request, endpoint, signal } = parameters
  // Until the take-up knows better, a lease ending (process exit) writes the mark as signed.
  const taken: { cell?: LedgerCell; fallback: bigint } = {
    fallback: record.ledger?.mark ?? record.entry.cumulativeAmount,
  }
  const lease = await book.claim(record, { origin: scope.origin, tally: tallyOf(taken) })
  if (!lease) return 'skipped'
  const result = await takeUp(context, { lease, endpoint, request, signal }).catch(
    async (error: unknown) => {
      await lease.release().catch(() => {})
      throw error
    },
  )
  if (result.kind === 'skip') return 'skipped'
  taken.cell = result.channel.cell
  if (result.kind === 'ready') {
    scope.channel = result.channel
    return 'ready'
  }
  return searchPayment(context, scope, { ...result, parameters, finish })
}

/**
 * Pays the call on a channel whose position at the server must be searched for, approved at one
 * price: `authorize` finds the server's highest voucher (see {@link search}), then signs the
 * call's voucher above it. If the search gives up, the channel is left to others (and to
 * `closeChannel`/`withdrawChannel`) and the call fails with a `RecoveredChannelError`, its own
 * voucher unsigned: the next call opens a new channel, approved with its deposit.
 */
function searchPayment(
  context: SessionContext,
  scope: Scope,
  {
    channel,
    from,
    steps,
    parameters,
    finish,
  }: {
    channel: LiveChannel
    from: bigint
    steps: number
    parameters: SearchParameters
    /** Lets the payments waiting for the search go. */
    finish: () => void
  },
): PreparedPayment {
  const { request, challenge, signal, cap, passedOver } = parameters
  const { channelId } = channel.entry
  const slot = voucherSlot(context, channel, request.amount)
  const settle = track(channel)
  const giveUp = async (reason: RecoveredChannelError.Reason) => {
    if (reason !== 'full') passedOver.add(channelId.toLowerCase() as Hex)
    if (scope.channel === channel) scope.channel = undefined
    await channel.lease.release()
    // Kept as it is, class included, for the caller to find it under the flow's error.
    return redactErrorInPlace(new RecoveredChannelError({ reason, channelId }))
  }
  const authorize = async () => {
    try {
      const result = await search(context, {
        channel,
        challenge,
        from,
        steps,
        price: request.amount,
        signal,
      })
      if ('failure' in result) throw await giveUp(result.failure)
      // What the server holds is taken as served: it says nothing of what it charged.
      channel.ledger = Ledger.create({
        spent: result.found,
        signed: channel.ledger.signed,
        mark: channel.ledger.mark,
        floor: result.found,
      })
      if (Ledger.next(channel.ledger, request.amount) > cap) throw await giveUp('full')
      scope.channel = channel
    } finally {
      finish()
    }
    return voucherCredential(context, challenge, channel, await slot.sign())
  }
  let authorizing: Promise<unknown> | undefined
  return {
    quote: quoteOf(context, request, { amount: request.amount, deposit: 0n, fee: 0n }),
    authorize() {
      const authorized = authorize()
      authorizing = authorized.catch(() => {})
      return authorized
    },
    async commit() {
      slot.settle('served')
      settle()
    },
    async rollback() {
      // A flow that gave up waiting does not wait for the search: the scope stays held until it
      // has ended, so that no other call takes the channel meanwhile.
      await authorizing
      if (!authorizing) {
        await channel.lease.release()
        finish()
      }
      slot.settle('refused')
      settle()
    },
  }
}

/** What a search needs of the call it pays. */
type SearchParameters = Pick<
  AcquireParameters,
  'request' | 'challenge' | 'signal' | 'cap' | 'passedOver'
>

/**
 * Catches a channel up with a server that says it holds a voucher above everything signed here
 * (another signer on the channel, or a lie): once its payments in flight have settled, from the
 * server's verified snapshot. A server that proves nothing gets nothing signed above what was
 * signed: the call fails with a {@link RecoveredChannelError} (`unproven`), and the channel is set
 * aside (kept for `close()`) for another, once per scope.
 *
 * @example
 * ```ts
 * if (channel.ledger.behind) await catchUp(context, scope, channel, parameters)
 * ```
 */
export async function catchUp(
  context: SessionContext,
  scope: Scope,
  channel: LiveChannel,
  parameters: Pick<AcquireParameters, 'signal' | 'passedOver'>,
): Promise<void> {
  const finish = occupy(channel)
  try {
    const { signal } = parameters
    await raceSignal(drained(channel), signal)
    const position = await askPosition(context, {
      endpoint: channel.endpoint,
      entry: channel.entry,
      signal,
    })
    if (position) {
      channel.ledger = Ledger.create({
        spent: position.spent,
        signed: maxOf(position.held, channel.ledger.signed),
        mark: channel.ledger.mark,
        floor: position.held,
      })
      return
    }
    if (scope.channel === channel && !scope.replaced) {
      scope.replaced = true
      parameters.passedOver.add(channel.entry.channelId.toLowerCase() as Hex)
      scope.channel = undefined
      scope.retired.push(channel)
    }
    throw redactErrorInPlace(
      new RecoveredChannelError({ reason: 'unproven', channelId: channel.entry.channelId }),
    )
  } finally {
    finish()
  }
}
