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
 * - an outcome that is not known counts as served, though the server may not have seen it: that
 *   leaves it credit (a voucher above what it served). A receipt taken when nothing else is in
 *   flight tells exactly what the server served and holds, and the next vouchers use that credit
 *   up (they repeat the voucher held while it covers the calls, see {@link Ledger.reconcile});
 * - nothing the server says raises a voucher above that: a receipt's or a snapshot's figures only
 *   ever lower `spent`, or set `floor` to a voucher this signer signed;
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
  /**
   * Whether a payment was allocated while another was in flight, since the ledger was last idle:
   * then no receipt says exactly what the server served (see {@link Ledger.reconcile}).
   */
  readonly overlapped: boolean
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
    return {
      spent,
      inFlight: 0n,
      signed,
      floor,
      mark: maxOf(mark, signed),
      behind: false,
      overlapped: false,
    }
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
        overlapped: ledger.inFlight > 0n,
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
   * The receipt of a payment that was alone in flight from its allocation to its answer: the
   * server served `spent` and holds a voucher of `held`. What this ledger counted above `spent`
   * (answers lost that the server never saw) is the server's credit: the next vouchers go from
   * `spent`, at least at `held` (a lower one would be stale), so that the server serves them from
   * that credit. Figures that cannot be true change nothing: a voucher held above the highest
   * signed (another signer: the stale path finds it), `spent` above `held`, or above what this
   * ledger counted. With payments overlapping, a receipt says nothing exact (answers arrive in any
   * order, and their calls may or may not be in it). Should the server have served more than the
   * receipt said (a request lost here that reached it later), {@link Ledger.shortfall} takes the
   * credit back.
   */
  reconcile(ledger: Ledger, { held, spent }: { held: bigint; spent: bigint }): Ledger {
    if (
      ledger.inFlight !== 0n ||
      ledger.overlapped ||
      held > ledger.signed ||
      spent > held ||
      spent > ledger.spent
    )
      return ledger
    return { ...ledger, spent, floor: maxOf(ledger.floor, held) }
  },

  /**
   * The server found too little left under a voucher of `amount` for the call (it charged more
   * than this ledger counts). For a voucher that repeated the one the server holds, to use its
   * credit, the credit is taken as used up: the next vouchers go above `floor`, which the server
   * holds already, so nothing is signed that it did not have. Any other voucher: unchanged (the
   * server's word raises nothing).
   */
  shortfall(ledger: Ledger, amount: bigint): Ledger {
    if (amount > ledger.floor || ledger.spent + ledger.inFlight >= ledger.floor) return ledger
    return { ...ledger, spent: ledger.floor - ledger.inFlight }
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
