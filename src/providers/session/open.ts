import type { Challenge } from 'mppx'
import { Session } from 'mppx/tempo'
import { type Hash, keccak256 } from 'viem'
import { maxOf } from '../../internal/bigint.js'
import { paidFeeOf } from '../../internal/fees.js'
import { raceSignal } from '../../internal/signal.js'
import { nowInSeconds } from '../../internal/time.js'
import type { SessionRequest } from '../../reserve/sessionRequest.js'
import { openCall, signOpen } from '../../reserve/transactions.js'
import type { ChannelEntry } from '../../stores/ChannelStore.js'
import type { PreparedPayment } from '../PaymentProvider.js'
import { prepareChannelAffordable } from './affordable.js'
import type { Book } from './book.js'
import {
  credentialOf,
  type LiveChannel,
  liveChannel,
  refusalOf,
  type SessionContext,
  tallyOf,
  voucherSlot,
} from './channel.js'
import type { Endpoint } from './endpoint.js'
import { Ledger } from './ledger.js'
import { quoteOf } from './quote.js'
import { askPosition, chainTime } from './takeUp.js'

const { Chain } = Session.Precompile

/** How often the chain is asked whether a lost open landed (ms). */
const lostOpenPoll = 1_000

/**
 * An open that was sent with no answer, or rejected: its signed transaction may still land (a
 * server may broadcast it after answering) until `validBefore` by the chain's clock. Its channel
 * is in the store, leased, meanwhile.
 */
export type LostOpen = { channel: LiveChannel; validBefore: number }

export type OpenPaymentParameters = {
  book: Book
  origin: string
  request: SessionRequest
  challenge: Challenge.Challenge
  endpoint: Endpoint
  deposit: bigint
  signal: AbortSignal
  /** The server accepted the open: the channel is the scope's. */
  onOpened: (channel: LiveChannel) => void
  /** The open was sent and not accepted: the chain decides. */
  onLost: (lost: LostOpen) => void
  /** The payment is decided (called once, after `onOpened`/`onLost`). */
  onEnd: () => void
}

/**
 * Pays a call by opening a channel with `deposit`: the open transaction, prepared (and its fee
 * quoted) before anything is signed, carries the call's voucher. The channel is written to the
 * store, leased, before the open is sent, so that no deposit is ever left untracked.
 *
 * @example
 * ```ts
 * const payment = await openPayment(context, { book, origin, request, challenge, endpoint, deposit, signal, ...scope })
 * ```
 */
export async function openPayment(
  context: SessionContext,
  {
    book,
    origin,
    request,
    challenge,
    endpoint,
    deposit,
    signal,
    onOpened,
    onLost,
    onEnd,
  }: OpenPaymentParameters,
): Promise<PreparedPayment> {
  const { payer, client } = context
  const { data, descriptor } = openCall(payer, request, deposit)
  const prepared = await prepareChannelAffordable(context, {
    request,
    spends: deposit,
    data,
    signal,
  })
  const { turn } = prepared
  let opening: Opening | undefined
  let sent = false
  let authorizing: Promise<unknown> | undefined
  /** The hash of the open transaction, once signed: the server broadcasts it as it is. */
  let signed: Hash | undefined

  const authorize = async () => {
    const transaction = await prepared.ready()
    const opened = await signOpen(client, {
      sender: payer.address,
      request,
      prepared: transaction,
      descriptor,
    })
    signed = keccak256(opened.transaction)
    const validBefore = transaction.transaction.validBefore ?? nowInSeconds()
    const signedOpen = await openCredential(context, challenge, {
      book,
      origin,
      endpoint,
      request,
      deposit,
      opened,
      validBefore,
    })
    opening = signedOpen.opening
    sent = true
    return signedOpen.credential
  }

  let ended = false
  const end = () => {
    if (ended) return
    ended = true
    turn?.end()
    onEnd()
  }
  return {
    // The first voucher rides in the open: the open pays its own call.
    quote: quoteOf(context, request, {
      amount: request.amount,
      deposit,
      fee: prepared.fee,
      feeToken: prepared.feeToken,
    }),
    feePaid: async () => (signed ? paidFeeOf(client, signed) : undefined),
    authorize() {
      const authorized = authorize()
      authorizing = authorized.catch(() => {})
      return authorized
    },
    async commit(receipt) {
      try {
        // An accepted open carrying the authorization provisioned the key; with no answer, the
        // chain is asked again next time.
        if (receipt) await turn?.provisioned()
        else turn?.unknown()
        if (!opening) return
        opening.slot.settle('served')
        if (receipt) {
          opening.channel.entry = { ...opening.channel.entry, opened: true }
          await opening.channel.lease.update({ opened: true })
          onOpened(opening.channel)
        } else onLost(opening)
      } finally {
        end()
      }
    },
    async rollback() {
      try {
        // A flow that gave up waiting does not wait for the signing: what it did is known after.
        await authorizing
        if (opening && sent) {
          opening.slot.settle('refused')
          onLost(opening)
        }
      } finally {
        end()
      }
    },
  }
}

/** What the store's record of an opening channel is made of. */
type OpeningRecord = {
  book: Book
  origin: string
  endpoint: Endpoint
  request: SessionRequest
  deposit: bigint
  opened: Awaited<ReturnType<typeof signOpen>>
  /** Until when (unix s) the open may land. */
  validBefore: number
}

/** An open signed and sent: its channel, the slot of its first voucher, and until when it may land. */
type Opening = { channel: LiveChannel; slot: ReturnType<typeof voucherSlot>; validBefore: number }

/**
 * The open's credential: the channel is written to the store (leased, see `recordOpening`) and
 * the first voucher signed on it, before anything leaves. If the voucher is not signed, the
 * channel is removed again: nothing left this process, so the open can never land.
 */
async function openCredential(
  context: SessionContext,
  challenge: Challenge.Challenge,
  record: OpeningRecord,
): Promise<{ credential: string; opening: Opening }> {
  const { opened, validBefore, request } = record
  const channel = await recordOpening(context, record)
  const { entry, lease } = channel
  const slot = voucherSlot(context, channel, request.amount)
  try {
    const voucher = await slot.sign()
    const credential = credentialOf(context, challenge, {
      action: 'open',
      type: 'transaction',
      channelId: entry.channelId,
      transaction: opened.transaction,
      descriptor: entry.descriptor,
      cumulativeAmount: voucher.amount.toString(),
      signature: voucher.signature,
      authorizedSigner: entry.descriptor.authorizedSigner,
    })
    return { credential, opening: { channel, slot, validBefore } }
  } catch (error) {
    await lease.remove()
    throw error
  }
}

/**
 * Writes the channel an open creates to the store, leased, with its mark covering the first
 * voucher: before the open leaves, so that a crash from then on leaves the channel (and its
 * deposit) in the store, marked as opening until `validBefore`.
 */
async function recordOpening(
  context: SessionContext,
  { book, origin, endpoint, request, deposit, opened, validBefore }: OpeningRecord,
): Promise<LiveChannel> {
  const entry: ChannelEntry = {
    channelId: opened.channelId,
    cumulativeAmount: 0n,
    deposit,
    descriptor: opened.descriptor,
    escrow: request.escrow,
    chainId: context.chainId,
    opened: false,
  }
  const ledger = Ledger.create({ spent: 0n, signed: 0n, mark: 0n })
  const mark = Ledger.markFor(ledger, request.amount, {
    price: request.amount,
    ahead: book.ahead,
    deposit,
  })
  const cell = { ledger: Ledger.marked(ledger, mark ?? 0n) }
  const lease = await book
    .add(
      { ...entry, cumulativeAmount: cell.ledger.mark },
      { origin, tally: tallyOf({ cell }), openingUntil: validBefore },
    )
    .catch((error: unknown) => {
      throw refusalOf(error, { entry }, request.amount)
    })
  return liveChannel({ entry, cell, lease, endpoint })
}

/**
 * Waits until the chain decides a lost open: landed (the channel is returned, its position asked
 * of the server when it can say) or expired by the chain's clock (its store entry is removed).
 *
 * @example
 * ```ts
 * const channel = await decideLostOpen(context, lost, { signal })
 * ```
 */
export async function decideLostOpen(
  context: SessionContext,
  { channel, validBefore }: LostOpen,
  { signal }: { signal: AbortSignal },
): Promise<LiveChannel | undefined> {
  for (;;) {
    const { deposit } = await raceSignal(
      Chain.getChannelState(context.client, channel.entry.channelId, channel.entry.escrow),
      signal,
    )
    if (deposit > 0n) {
      channel.entry = { ...channel.entry, deposit, opened: true }
      await channel.lease.update({ opened: true, deposit })
      const position = await askPosition(context, {
        endpoint: channel.endpoint,
        entry: channel.entry,
        signal,
      })
      if (position)
        channel.ledger = Ledger.create({
          spent: position.spent,
          signed: maxOf(position.held, channel.ledger.signed),
          mark: channel.ledger.mark,
          floor: position.held,
        })
      return channel
    }
    if ((await chainTime(context, signal)) > validBefore) {
      await channel.lease.remove()
      return undefined
    }
    await raceSignal(new Promise<void>((resolve) => setTimeout(resolve, lostOpenPoll)), signal)
  }
}
