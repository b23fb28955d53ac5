import type { Challenge } from 'mppx'
import { Credential } from 'mppx'
import type { Hex } from 'viem'
import { PaymentRefusedError } from '../../errors.js'
import { type ChainClient, signVoucher } from '../../reserve/transactions.js'
import type { ChannelEntry, ChannelLease } from '../../stores/ChannelStore.js'
import { ChannelStoreError } from '../../stores/errors.js'
import type { Payer } from '../payer.js'
import type { Endpoint } from './endpoint.js'
import { Ledger } from './ledger.js'

/** What every part of a session provider signs and sends with. */
export type SessionContext = {
  payer: Payer
  client: ChainClient
  chainId: number
  /** How many calls' worth the store's mark is written ahead. */
  ahead: number
}

/** The credential of `payload` for `challenge`, as the flow sends it. */
export function credentialOf(
  context: SessionContext,
  challenge: Challenge.Challenge,
  payload: Record<string, unknown>,
) {
  return Credential.serialize({ challenge, payload, source: context.payer.source })
}

/** The credential of a voucher of `amount` on `channel`, signed with `signature`. */
export function voucherCredential(
  context: SessionContext,
  challenge: Challenge.Challenge,
  channel: LiveChannel,
  { amount, signature }: { amount: bigint; signature: Hex },
) {
  return credentialOf(context, challenge, {
    action: 'voucher',
    channelId: channel.entry.channelId,
    descriptor: channel.entry.descriptor,
    cumulativeAmount: amount.toString(),
    signature,
  })
}

/**
 * Where a channel's ledger lives: its lease's tally reads it there, so that the lease (which the
 * store's renewals and a finalizer hold) never refers to the channel, whose endpoint leads back to
 * the transport and the provider.
 */
export type LedgerCell = { ledger: Ledger }

/**
 * The tally a lease writes when it ends: what `cell`'s ledger says was signed and served, or
 * `fallback` until the cell is set (a take-up not done yet). Made here, at the module's top level,
 * so that the closure holds the cell and nothing of the function that leased the channel (a
 * closure keeps its whole enclosing scope, endpoint and transport included).
 *
 * @example
 * ```ts
 * const tally = tallyOf({ cell })
 * ```
 */
export function tallyOf(holder: { cell?: LedgerCell | undefined; fallback?: bigint | undefined }) {
  return () => {
    if (holder.cell) return Ledger.tally(holder.cell.ledger)
    const fallback = holder.fallback ?? 0n
    return { signed: fallback, spent: fallback }
  }
}

/**
 * A channel this provider pays on, leased from the store: its entry, its ledger, and what the
 * payments on it are doing. Only this process signs on it while the lease lasts.
 */
export type LiveChannel = {
  entry: ChannelEntry
  /** The ledger, kept in {@link LiveChannel.cell}. */
  ledger: Ledger
  /** Holds `ledger`, for the lease's tally. */
  readonly cell: LedgerCell
  readonly lease: ChannelLease
  /** Where its management requests go: the last paid request's URL (memory only). */
  endpoint: Endpoint
  /** Payments prepared on the channel whose outcome is not known yet. */
  pending: number
  /**
   * The prices of payments prepared whose vouchers are not signed yet: the ledger allocates a
   * voucher only when it is signed (so that a refused payment leaves no gap), and these count
   * when deciding whether the deposit covers one more.
   */
  unsigned: bigint
  /** Called each time one of the `pending` payments settles. */
  waiters: (() => void)[]
  /** A top-up, take-up or close in progress: payments wait for it to settle. */
  busy: Promise<void> | undefined
  /** The mark being written, and when it is. */
  raising: { mark: bigint; written: Promise<void> } | undefined
  /** The highest voucher the server answered stale since it last accepted one. */
  stale: bigint | undefined
}

/**
 * A channel taken into use with the ledger in `cell`.
 *
 * @example
 * ```ts
 * const cell = { ledger: Ledger.create({ spent, signed, mark }) }
 * const channel = liveChannel({ entry, cell, lease, endpoint })
 * ```
 */
export function liveChannel({
  entry,
  cell,
  lease,
  endpoint,
}: Pick<LiveChannel, 'entry' | 'cell' | 'lease' | 'endpoint'>): LiveChannel {
  return {
    entry,
    cell,
    get ledger() {
      return cell.ledger
    },
    set ledger(ledger) {
      cell.ledger = ledger
    },
    lease,
    endpoint,
    pending: 0,
    unsigned: 0n,
    waiters: [],
    busy: undefined,
    raising: undefined,
    stale: undefined,
  }
}

/**
 * Counts a payment on `channel` until the returned function is called (any number of times), so
 * that a close or a retirement waits for it.
 */
export function track(channel: LiveChannel) {
  channel.pending++
  let done = false
  return () => {
    if (done) return
    done = true
    channel.pending--
    for (const waiter of channel.waiters.splice(0)) waiter()
  }
}

/** Settles once no payment is pending on `channel`. */
export async function drained(channel: LiveChannel) {
  while (channel.pending > 0)
    await new Promise<void>((resolve) => {
      channel.waiters.push(resolve)
    })
}

/** Settles when the next pending payment of `channel` does. */
export function nextSettled(channel: LiveChannel) {
  return new Promise<void>((resolve) => {
    channel.waiters.push(resolve)
  })
}

/**
 * Writes the store's mark ahead so that `amount` may be signed: one write covers the next
 * `context.ahead` calls' worth, and concurrent payments share it. It is written once half of the
 * current mark's room is used: a voucher the current mark covers does not wait for that write.
 */
async function markUpTo(
  context: SessionContext,
  channel: LiveChannel,
  amount: bigint,
  price: bigint,
) {
  for (;;) {
    const covered = amount <= channel.ledger.mark
    const raising = channel.raising
    if (raising) {
      if (covered) return
      // A store with a fleet budget may write less than was asked: looked at again once written.
      if (raising.mark >= amount) await raising.written
      else await raising.written.catch(() => {})
      continue
    }
    const mark = Ledger.markFor(channel.ledger, amount, {
      price,
      ahead: context.ahead,
      deposit: channel.entry.deposit,
    })
    if (mark === undefined) return
    const written = channel.lease.raise(mark, amount).then((granted) => {
      channel.ledger = Ledger.marked(channel.ledger, granted)
    })
    const current = { mark, written }
    channel.raising = current
    written
      .finally(() => {
        if (channel.raising === current) channel.raising = undefined
      })
      .catch(() => {})
    // Covered already: the write goes on while the voucher is signed and sent.
    if (covered) return
    await written
  }
}

/**
 * Signs a voucher of `amount` on `channel` outside a payment (a take-up's search, a close),
 * within the store's mark, and returns its signature.
 */
export async function signOutside(
  context: SessionContext,
  channel: LiveChannel,
  amount: bigint,
  price: bigint,
) {
  await markUpTo(context, channel, amount, price)
  const signature = await signVoucher(context.client, context.payer.account, channel.entry, amount)
  channel.ledger = Ledger.signedUpTo(channel.ledger, amount)
  return signature
}

/**
 * One payment's voucher on `channel`: its amount is allocated when it is signed (a payment the
 * policy refused signs nothing and takes nothing), once the store's mark covers it, and settled
 * once with the payment's outcome.
 *
 * @example
 * ```ts
 * const slot = voucherSlot(context, channel, price)
 * const { amount, signature } = await slot.sign() // in authorize()
 * slot.settle('served') // in commit()
 * ```
 */
export function voucherSlot(context: SessionContext, channel: LiveChannel, price: bigint) {
  let amount: bigint | undefined
  let settled = false
  let reserved = true
  channel.unsigned += price
  const unreserve = () => {
    if (!reserved) return
    reserved = false
    channel.unsigned -= price
  }
  const settle = (outcome: Ledger.Outcome) => {
    unreserve()
    if (amount === undefined || settled) return
    settled = true
    channel.ledger = Ledger.settle(channel.ledger, price, outcome)
  }
  return {
    /** The voucher's amount, once signed. */
    get amount() {
      return amount
    },
    /** Allocates the voucher, writes the mark ahead if needed, and signs it. */
    async sign(): Promise<{ amount: bigint; signature: Hex }> {
      unreserve()
      const allocated = Ledger.allocate(channel.ledger, price)
      channel.ledger = allocated.ledger
      amount = allocated.amount
      try {
        await markUpTo(context, channel, allocated.amount, price)
        // The lease may have run out while the payment was approved: nothing signed on it then.
        if (channel.lease.lost)
          throw new ChannelStoreError({
            reason: 'leaseLost',
            channelId: channel.entry.channelId,
          })
        const signature = await signVoucher(
          context.client,
          context.payer.account,
          channel.entry,
          allocated.amount,
        )
        return { amount: allocated.amount, signature }
      } catch (error) {
        settle('refused')
        throw refusalOf(error, channel, price)
      }
    },
    settle,
  }
}

/**
 * Marks `holder` (a scope or a channel) busy until the returned `finish` is called: payments that
 * find it busy wait for it. `finish` is idempotent and leaves a later occupant's mark alone.
 *
 * @example
 * ```ts
 * const finish = occupy(channel)
 * try { await topUp() } finally { finish() }
 * ```
 */
export function occupy(holder: { busy: Promise<void> | undefined }): () => void {
  let done!: () => void
  const busy = new Promise<void>((resolve) => {
    done = resolve
  })
  holder.busy = busy
  return () => {
    if (holder.busy === busy) holder.busy = undefined
    done()
  }
}

/**
 * A store's fleet budget refusing the mark is the payment refused: nothing was signed.
 *
 * @example
 * ```ts
 * throw refusalOf(error, channel, price)
 * ```
 */
export function refusalOf(error: unknown, channel: Pick<LiveChannel, 'entry'>, price: bigint) {
  if (!(error instanceof ChannelStoreError && error.reason === 'budget')) return error
  return new PaymentRefusedError({
    reason: 'fleetBudget',
    amount: price,
    currency: channel.entry.descriptor.token,
    limit: error.left,
    cause: error,
  })
}
