import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { Ledger } from '../../src/providers/session/ledger.js'

/**
 * The ledger against a model of mppx's session server, under any interleaving of payments,
 * deliveries out of order, rejections, lost answers and retries. What is asserted is what the
 * server holds: its highest voucher is never above the most it ever had served or in flight at
 * once (a payment refused before it was sent, while a higher voucher was on its way, leaves the
 * server that voucher as credit), and the payments that follow use up that credit, until it
 * holds exactly what it charged (plus what the payer counted as paid for answers it lost).
 */

/** mppx's server for one channel: its highest voucher, and what it charged against it. */
type Server = { highest: bigint; charged: bigint }

type Verdict = 'accepted' | 'stale' | 'insufficient'

/**
 * A voucher of `amount` paying a call of `price`: below the highest held it is stale; otherwise
 * it becomes the highest, and the call is charged if the vouchers cover it.
 */
function deliver(server: Server, amount: bigint, price: bigint): Verdict {
  if (amount < server.highest) return 'stale'
  server.highest = amount
  if (server.highest - server.charged < price) return 'insufficient'
  server.charged += price
  return 'accepted'
}

/** A payment signed and not yet settled. */
type Pending = { amount: bigint; price: bigint; attempt: number }

/** The server's answer to a payment: its verdict, and its figures (a receipt's) when it gave it. */
type Answer = { payment: Pending; verdict: Verdict; held: bigint; spent: bigint }

type Step =
  | { kind: 'pay'; price: bigint }
  /** The server gets a pending voucher; its answer comes back at once, or later (`hold`). */
  | { kind: 'deliver'; pick: number; hold: boolean }
  /** An answer held on the way comes back. */
  | { kind: 'answer'; pick: number }
  /**
   * The answer is lost, and the payer counts the payment paid: the server got the voucher
   * (`reached`), or not, or gets it later (`late`: it stays on the way until an `arrive` step).
   */
  | { kind: 'lose'; pick: number; reached: boolean | 'late' }
  /** A voucher on its way since its answer was lost reaches the server. */
  | { kind: 'arrive'; pick: number }
  /** The request failed before it was sent: the payment is refused, nothing reached the server. */
  | { kind: 'fail'; pick: number }

/** Prices of calls: often the same (as an endpoint's are), or any other. */
const price = fc.oneof(fc.constant(1n), fc.bigInt({ min: 1n, max: 5000n }))
const steps = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: price.map((price) => ({ kind: 'pay' as const, price })) },
    {
      weight: 5,
      arbitrary: fc
        .record({ pick: fc.nat(), hold: fc.boolean() })
        .map((step) => ({ kind: 'deliver' as const, ...step })),
    },
    { weight: 2, arbitrary: fc.nat().map((pick) => ({ kind: 'answer' as const, pick })) },
    {
      weight: 1,
      arbitrary: fc
        .record({ pick: fc.nat(), reached: fc.constantFrom(true, false, 'late' as const) })
        .map((step) => ({ kind: 'lose' as const, ...step })),
    },
    { weight: 1, arbitrary: fc.nat().map((pick) => ({ kind: 'arrive' as const, pick })) },
    { weight: 1, arbitrary: fc.nat().map((pick) => ({ kind: 'fail' as const, pick })) },
  ),
  { maxLength: 200 },
)

/**
 * Runs `plan` on a fresh ledger and server, then delivers what is left, in order. With
 * `receipts`, each accepted payment's answer carries the server's figures (its highest voucher and
 * what it charged), as mppx's receipts do, and the payer reconciles its ledger with them.
 */
function play(plan: Step[], { receipts = false }: { receipts?: boolean } = {}) {
  const server: Server = { highest: 0n, charged: 0n }
  let ledger = Ledger.create({ spent: 0n, signed: 0n, mark: 0n })
  const pending: Pending[] = []
  /** Prices counted as paid that never reached the server. */
  let lostUnseen = 0n
  /** Calls the server served, in prices. */
  let served = 0n
  /** The most the payer had served, in flight, or counted as paid at once. */
  let peak = 0n

  const sign = (price: bigint, attempt = 1) => {
    const allocated = Ledger.allocate(ledger, price)
    ledger = allocated.ledger
    pending.push({ amount: allocated.amount, price, attempt })
  }
  /** Calls that failed after three rejected payments. */
  let failedCalls = 0
  /** Answers on their way back: the server's verdict and its figures when it gave it. */
  const answers: Answer[] = []
  /**
   * Delivers one pending payment to the server; its answer comes back at once, or (`hold`) waits
   * for an `answer` step, so that answers come back in another order than the server gave them.
   */
  const deliverOne = (index: number, { hold = false }: { hold?: boolean } = {}) => {
    const [payment] = pending.splice(index, 1)
    if (!payment) return
    const verdict = deliver(server, payment.amount, payment.price)
    if (verdict === 'accepted') served += payment.price
    const answer = { payment, verdict, held: server.highest, spent: server.charged }
    if (hold) answers.push(answer)
    else answerOne(answer)
  }
  /** An answer reaches the payer; a rejected payment is signed again (the flow's retry). */
  const answerOne = ({ payment, verdict, held, spent }: Answer) => {
    if (verdict === 'accepted') {
      ledger = Ledger.settle(ledger, payment.price, 'served')
      if (receipts) ledger = Ledger.reconcile(ledger, { held, spent })
      return
    }
    if (verdict === 'stale') ledger = Ledger.stale(ledger, payment.amount)
    ledger = Ledger.settle(ledger, payment.price, 'refused')
    if (verdict === 'insufficient') ledger = Ledger.shortfall(ledger, payment.amount)
    expect(ledger.behind).toBe(false)
    // Three payments per call at most, as in the flow; then the call fails.
    if (payment.attempt < 3) sign(payment.price, payment.attempt + 1)
    else failedCalls++
  }
  /** Vouchers whose answers were lost, still on their way to the server. */
  const transit: Pending[] = []
  /** A voucher on its way arrives: what the server makes of it, the payer never learns. */
  const arrive = (index: number) => {
    const [payment] = transit.splice(index, 1)
    if (!payment) return
    const verdict = deliver(server, payment.amount, payment.price)
    if (verdict === 'accepted') served += payment.price
    else lostUnseen += payment.price
  }
  const inFlight = () =>
    [...pending, ...answers.map(({ payment }) => payment)].reduce(
      (sum, { price }) => sum + price,
      0n,
    )
  const check = () => {
    expect(ledger.inFlight).toBe(inFlight())
    const onTheWay = transit.reduce((sum, { price }) => sum + price, 0n)
    const now = server.charged + inFlight() + onTheWay + lostUnseen
    if (now > peak) peak = now
    expect(server.highest).toBeLessThanOrEqual(peak)
    expect(ledger.signed).toBeLessThanOrEqual(peak)
    expect(ledger.signed).toBeGreaterThanOrEqual(server.highest)
  }

  for (const step of plan) {
    if (step.kind === 'pay') sign(step.price)
    else if (step.kind === 'arrive') {
      if (transit.length > 0) arrive(step.pick % transit.length)
    } else if (step.kind === 'answer') {
      const [answer] = answers.splice(step.pick % Math.max(answers.length, 1), 1)
      if (answer) answerOne(answer)
    } else if (pending.length > 0) {
      const index = step.pick % pending.length
      if (step.kind === 'deliver') deliverOne(index, { hold: step.hold })
      else if (step.kind === 'fail') {
        const [payment] = pending.splice(index, 1)
        ledger = Ledger.settle(ledger, payment!.price, 'refused')
      } else {
        const [payment] = pending.splice(index, 1)
        // Whatever the server does with it, the payer counts it paid.
        if (step.reached === 'late') transit.push(payment!)
        else if (step.reached) {
          transit.push(payment!)
          arrive(transit.length - 1)
        } else lostUnseen += payment!.price
        ledger = Ledger.settle(ledger, payment!.price, 'served')
      }
    }
    check()
  }
  // The rest arrives in order (each rejection signed again and resent at once).
  while (pending.length > 0 || transit.length > 0 || answers.length > 0) {
    if (transit.length > 0) arrive(0)
    else if (answers.length > 0) answerOne(answers.shift()!)
    else deliverOne(0)
    check()
  }
  const settled = { highest: server.highest, charged: server.charged, peak }
  // Then calls of the smallest price, in order, until the server's credit is used up: with
  // receipts all of it, without them all but what the payer counted for answers it lost.
  const credit = () => server.highest - server.charged - (receipts ? 0n : lostUnseen)
  let after = 0
  // With receipts, one call at least: its receipt is how the payer learns of answers lost. The
  // most calls that can take (see the tests' bound): a ledger that never uses the credit up
  // ends here, and fails the bound, rather than looping.
  const most = Number(peak - server.charged + lostUnseen) + 2
  const failedBefore = failedCalls
  while ((credit() > 0n || (receipts && after === 0)) && after < most) {
    sign(1n)
    deliverOne(0)
    while (pending.length > 0) deliverOne(0)
    check()
    after++
  }
  // Calls one at a time never fail: the ledger is never left stuck on a voucher the server refuses.
  expect(failedCalls).toBe(failedBefore)
  return { server, ledger, served, lostUnseen, settled, after }
}

describe('Ledger against a model of the server', () => {
  test('the server never holds more than the most served and in flight at once; the next calls bring it to exactly what it charged', () => {
    fc.assert(
      fc.property(steps, (plan) => {
        const { server, ledger, served, lostUnseen, settled, after } = play(plan)
        expect(ledger.inFlight).toBe(0n)
        expect(server.charged).toBe(served)
        expect(ledger.spent).toBe(served + lostUnseen)
        // At most one call of the smallest price per unit the peak was above what was charged,
        // then exact: the server holds what it charged, and at most what the payer counted as
        // paid for answers it lost.
        expect(BigInt(after)).toBeLessThanOrEqual(settled.peak - settled.charged)
        expect(server.highest).toBeGreaterThanOrEqual(server.charged)
        expect(server.highest).toBeLessThanOrEqual(server.charged + lostUnseen)
      }),
      { numRuns: 500 },
    )
  })

  test("with the server's receipts: the credit lost answers left is used up too, and the server holds exactly what it charged", () => {
    fc.assert(
      fc.property(steps, (plan) => {
        const { server, ledger, served, lostUnseen, settled, after } = play(plan, {
          receipts: true,
        })
        expect(ledger.inFlight).toBe(0n)
        expect(server.charged).toBe(served)
        expect(server.highest).toBe(server.charged)
        // Counted down to what the server charged, never above it: the answers lost that it never
        // saw are not paid for. (A voucher lost here that reached the server after the receipt
        // leaves the count below what it charged: nothing the server says raises it, and the
        // next repeat of its voucher, refused for want of credit, gives that up: see shortfall.)
        expect(ledger.spent).toBeLessThanOrEqual(served)
        expect(BigInt(after)).toBeLessThanOrEqual(settled.peak - settled.charged + lostUnseen + 1n)
      }),
      { numRuns: 500 },
    )
  })

  test('figures a receipt cannot prove change nothing: in flight, a voucher held above the highest signed, spent above held or above what was counted', () => {
    const ledger = Ledger.create({ spent: 5000n, signed: 5000n, mark: 10_000n })
    const inFlight = Ledger.allocate(ledger, 1000n).ledger
    expect(Ledger.reconcile(inFlight, { held: 5000n, spent: 4000n })).toBe(inFlight)
    expect(Ledger.reconcile(ledger, { held: 6000n, spent: 4000n })).toBe(ledger)
    expect(Ledger.reconcile(ledger, { held: 4000n, spent: 4500n })).toBe(ledger)
    const lower = Ledger.create({ spent: 3000n, signed: 5000n, mark: 10_000n })
    expect(Ledger.reconcile(lower, { held: 5000n, spent: 4000n })).toBe(lower)
    const reconciled = Ledger.reconcile(ledger, { held: 5000n, spent: 4000n })
    expect({ spent: reconciled.spent, floor: reconciled.floor }).toEqual({
      spent: 4000n,
      floor: 5000n,
    })
    // The next call repeats the voucher held: the server serves it from its credit.
    expect(Ledger.next(reconciled, 1000n)).toBe(5000n)
    expect(
      Ledger.next(Ledger.settle(Ledger.allocate(reconciled, 1000n).ledger, 1000n, 'served'), 1000n),
    ).toBe(6000n)
  })

  test('in order, with no losses: the highest voucher is exactly what was charged, call after call', () => {
    fc.assert(
      fc.property(fc.array(price, { maxLength: 100 }), (prices) => {
        const plan: Step[] = prices.flatMap((price) => [
          { kind: 'pay' as const, price },
          { kind: 'deliver' as const, pick: 0, hold: false },
        ])
        const { server, ledger } = play(plan)
        const total = prices.reduce((sum, price) => sum + price, 0n)
        expect({ highest: server.highest, charged: server.charged }).toEqual({
          highest: total,
          charged: total,
        })
        expect(Ledger.tally(ledger)).toEqual({ signed: total, spent: total })
      }),
    )
  })
})

describe('Ledger.markFor', () => {
  test('no voucher above the mark; a write per half `ahead` payments, due before a voucher needs it', () => {
    fc.assert(
      fc.property(
        price,
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 300 }),
        (price, ahead, calls) => {
          const deposit = price * 1000n
          let ledger = Ledger.create({ spent: 0n, signed: 0n, mark: 0n })
          let writes = 0
          /** Payments whose voucher was above the written mark: they wait for the write. */
          let waits = 0
          for (let call = 0; call < calls; call++) {
            const allocated = Ledger.allocate(ledger, price)
            ledger = allocated.ledger
            if (allocated.amount > ledger.mark) waits++
            const mark = Ledger.markFor(ledger, allocated.amount, { price, ahead, deposit })
            if (mark !== undefined) {
              expect(mark).toBeGreaterThan(ledger.mark)
              expect(mark).toBeLessThanOrEqual(
                allocated.amount > deposit ? allocated.amount : deposit,
              )
              ledger = Ledger.marked(ledger, mark)
              writes++
            }
            expect(allocated.amount).toBeLessThanOrEqual(ledger.mark)
            ledger = Ledger.settle(ledger, price, 'served')
          }
          const step = Math.max(1, Math.ceil(ahead / 2))
          expect(writes).toBeLessThanOrEqual(Math.ceil(calls / step) + 1)
          // Only the first voucher waits, unless every one must (`ahead` 1).
          expect(waits).toBe(ahead === 1 ? calls : 1)
          // A crash now leaves the mark at most `ahead - 1` prices above what was served.
          expect(ledger.mark - ledger.spent).toBeLessThanOrEqual(price * BigInt(ahead - 1))
        },
      ),
    )
  })
})
