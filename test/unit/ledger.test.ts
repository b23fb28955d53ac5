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
type Pending = { amount: bigint; price: bigint }

type Step =
  | { kind: 'pay'; price: bigint }
  | { kind: 'deliver'; pick: number }
  /** The answer is lost: the server got the voucher (`reached`) or not; the payer counts it paid. */
  | { kind: 'lose'; pick: number; reached: boolean }
  /** The request failed before it was sent: the payment is refused, nothing reached the server. */
  | { kind: 'fail'; pick: number }

const price = fc.bigInt({ min: 1n, max: 5000n })
const steps = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: price.map((price) => ({ kind: 'pay' as const, price })) },
    {
      weight: 5,
      arbitrary: fc.nat().map((pick) => ({ kind: 'deliver' as const, pick })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ pick: fc.nat(), reached: fc.boolean() })
        .map((step) => ({ kind: 'lose' as const, ...step })),
    },
    { weight: 1, arbitrary: fc.nat().map((pick) => ({ kind: 'fail' as const, pick })) },
  ),
  { maxLength: 200 },
)

/** Runs `plan` on a fresh ledger and server, then delivers what is left, in order. */
function play(plan: Step[]) {
  const server: Server = { highest: 0n, charged: 0n }
  let ledger = Ledger.create({ spent: 0n, signed: 0n, mark: 0n })
  const pending: Pending[] = []
  /** Prices counted as paid that never reached the server. */
  let lostUnseen = 0n
  /** Calls the server served, in prices. */
  let served = 0n
  /** The most the payer had served, in flight, or counted as paid at once. */
  let peak = 0n

  const sign = (price: bigint) => {
    const allocated = Ledger.allocate(ledger, price)
    ledger = allocated.ledger
    pending.push({ amount: allocated.amount, price })
  }
  /** Delivers one pending payment; a rejected one is signed again (the flow's retry). */
  const deliverOne = (index: number) => {
    const [payment] = pending.splice(index, 1)
    if (!payment) return
    const verdict = deliver(server, payment.amount, payment.price)
    if (verdict === 'accepted') {
      served += payment.price
      ledger = Ledger.settle(ledger, payment.price, 'served')
      return
    }
    if (verdict === 'stale') ledger = Ledger.stale(ledger, payment.amount)
    ledger = Ledger.settle(ledger, payment.price, 'refused')
    expect(ledger.behind).toBe(false)
    sign(payment.price)
  }
  const inFlight = () => pending.reduce((sum, { price }) => sum + price, 0n)
  const check = () => {
    expect(ledger.inFlight).toBe(inFlight())
    const now = server.charged + inFlight() + lostUnseen
    if (now > peak) peak = now
    expect(server.highest).toBeLessThanOrEqual(peak)
    expect(ledger.signed).toBeLessThanOrEqual(peak)
    expect(ledger.signed).toBeGreaterThanOrEqual(server.highest)
  }

  for (const step of plan) {
    if (step.kind === 'pay') sign(step.price)
    else if (pending.length > 0) {
      const index = step.pick % pending.length
      if (step.kind === 'deliver') deliverOne(index)
      else if (step.kind === 'fail') {
        const [payment] = pending.splice(index, 1)
        ledger = Ledger.settle(ledger, payment!.price, 'refused')
      } else {
        const [payment] = pending.splice(index, 1)
        if (step.reached) {
          // Processed, answer lost: whatever the server did, the payer counts it paid.
          const verdict = deliver(server, payment!.amount, payment!.price)
          if (verdict === 'accepted') served += payment!.price
          else lostUnseen += payment!.price
        } else lostUnseen += payment!.price
        ledger = Ledger.settle(ledger, payment!.price, 'served')
      }
    }
    check()
  }
  // The rest arrives in order (each rejection signed again and resent at once).
  while (pending.length > 0) {
    deliverOne(0)
    check()
  }
  const settled = { highest: server.highest, charged: server.charged, peak }
  // Then calls of the smallest price, in order, until the server's credit is used up.
  let after = 0
  while (server.highest > server.charged + lostUnseen && after < 1_000_000) {
    sign(1n)
    deliverOne(0)
    while (pending.length > 0) deliverOne(0)
    check()
    after++
  }
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

  test('in order, with no losses: the highest voucher is exactly what was charged, call after call', () => {
    fc.assert(
      fc.property(fc.array(price, { maxLength: 100 }), (prices) => {
        const plan: Step[] = prices.flatMap((price) => [
          { kind: 'pay' as const, price },
          { kind: 'deliver' as const, pick: 0 },
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
