import { maxOf, minOf } from '../../internal/bigint.js'

/**
 * The voucher ledger of one channel: plain state and pure functions, no I/O.
 *
 * A session voucher is cumulative: the payee may settle the highest one it holds, whatever it
 * served. The ledger keeps that highest voucher equal to what was served:
 *
 * - a payment's voucher is `spent + inFlight + price`, decided when it is signed (a payment the
 *   policy refuses signs nothing and leaves no gap);
 * - its outcome settles it: served (a 2xx, or an outcome that is not known) adds its price to
 *   `spent`; refused (never sent, or rejected) only takes it out of `inFlight`, so that the next
 *   payment signs the same amount again rather than one above it;
 * - vouchers reordered on the way are answered "stale" by the server: it already holds a higher
 *   one, which covers the stale payment's call, so that payment goes again at least at `floor`
 *   (the highest voucher the server can hold) and the server serves it from that voucher;
 * - nothing the server says raises a voucher above that: a receipt's or a snapshot's figures only
 *   ever lower `spent`, or set `floor` to a voucher this signer provably signed;
 * - `mark` is what the store records: no voucher above it is signed, so a crash leaves the next
 *   holder a bound. It is written ahead in steps (see {@link markFor}).
 *
 * @example
 * ```ts
 * import { Ledger } from './ledger.js'
 *
 * let ledger = Ledger.create({ spent: 0n, signed: 0n, mark: 10_000n })
 * const payment = Ledger.allocate(ledger, 1000n)
 * ledger = payment.ledger // voucher: payment.amount (1000n)
 * ledger = Ledger.settle(ledger, 1000n, 'served')
 * ```
 */
export type Ledger = {
  /** The cumulative amount served on the channel: accepted payments, and unknown outcomes. */
  readonly spent: bigint
  /** The prices of payments signed whose outcome is not known yet. */
  readonly inFlight: bigint
  /** The highest cumulative amount signed. */
  readonly signed: bigint
  /**
   * Vouchers go at least here: the server said it holds a voucher above one sent, at most this
   * (the highest signed, or a snapshot's verified voucher).
   */
  readonly floor: bigint
  /** The store's mark: no voucher above it may be signed until it is raised. */
  readonly mark: bigint
  /**
   * The server holds a voucher above everything signed here (another signer on the channel, or a
   * take-up that started too low): the channel must be taken up again before it pays.
   */
  readonly behind: boolean
}

export declare namespace Ledger {
  /** How a payment ended: `served` (accepted, or not known), or `refused` (not sent, or rejected). */
  type Outcome = 'served' | 'refused'
}

export const Ledger = {
  /** A ledger that continues from `spent` served and `signed` signed, under `mark`. */
  create({
    spent,
    signed,
    mark,
    floor = 0n,
  }: {
    spent: bigint
    signed: bigint
    mark: bigint
    floor?: bigint | undefined
  }): Ledger {
    return { spent, inFlight: 0n, signed, floor, mark: maxOf(mark, signed), behind: false }
  },

  /** The voucher the next payment of `price` would sign. */
  next(ledger: Ledger, price: bigint): bigint {
    return maxOf(ledger.spent + ledger.inFlight + price, ledger.floor)
  },

  /**
   * Allocates the voucher of a payment of `price`: it is in flight from now on. Its `amount` may
   * be signed only once the mark covers it (see {@link Ledger.markFor}).
   */
  allocate(ledger: Ledger, price: bigint): { ledger: Ledger; amount: bigint } {
    const amount = Ledger.next(ledger, price)
    return {
      amount,
      ledger: {
        ...ledger,
        inFlight: ledger.inFlight + price,
        signed: maxOf(ledger.signed, amount),
      },
    }
  },

  /** A voucher of `amount` was signed outside a payment (a take-up's search, a close). */
  signedUpTo(ledger: Ledger, amount: bigint): Ledger {
    return amount > ledger.signed ? { ...ledger, signed: amount } : ledger
  },

  /** Settles a payment of `price` allocated earlier. */
  settle(ledger: Ledger, price: bigint, outcome: Ledger.Outcome): Ledger {
    if (ledger.inFlight < price) throw new Error('Settling a payment that is not in flight.')
    return {
      ...ledger,
      inFlight: ledger.inFlight - price,
      spent: outcome === 'served' ? ledger.spent + price : ledger.spent,
    }
  },

  /**
   * The server answered a voucher of `amount` as stale: it holds a higher one. The next vouchers
   * go at least as high as the highest it can hold (`held`, when a snapshot proved it, else the
   * highest signed). If `amount` was the highest signed already, the server holds a voucher signed
   * elsewhere: the channel is `behind`.
   */
  stale(ledger: Ledger, amount: bigint, held?: bigint | undefined): Ledger {
    if (held !== undefined && held > ledger.signed) return { ...ledger, behind: true }
    const floor = maxOf(ledger.floor, held ?? ledger.signed)
    return { ...ledger, floor, behind: held === undefined && amount >= ledger.signed }
  },

  /**
   * The mark to write once a voucher of `amount` is allocated, `undefined` if the current one will
   * do: the amount and `ahead - 1` more prices (one write per several payments), within the
   * deposit. It is due once half of what the current mark leaves is used, so that the write is
   * done before a voucher needs it; a voucher above the current mark waits for it.
   */
  markFor(
    ledger: Ledger,
    amount: bigint,
    { price, ahead, deposit }: { price: bigint; ahead: number; deposit: bigint },
  ): bigint | undefined {
    if (amount + price * BigInt(Math.floor(ahead / 2)) <= ledger.mark) return undefined
    const mark = maxOf(amount, minOf(amount + price * BigInt(Math.max(ahead - 1, 0)), deposit))
    return mark > ledger.mark ? mark : undefined
  },

  /** The mark is written: vouchers up to `mark` may be signed. */
  marked(ledger: Ledger, mark: bigint): Ledger {
    return mark > ledger.mark ? { ...ledger, mark } : ledger
  },

  /** What a holder writes when it releases the channel: exactly what was signed and served. */
  tally(ledger: Ledger): { signed: bigint; spent: bigint } {
    return { signed: ledger.signed, spent: ledger.spent + ledger.inFlight }
  },
}
