/**
 * The transport's `budget` under concurrency: calls racing for the last of it are granted or
 * refused so that what is committed never passes it.
 */
import { getEventListeners } from 'node:events'
import { describe, expect, test } from 'vitest'
import { PaymentRefusedError } from '../../src/index.js'
import { fakeProvider } from '../support/fakePayments.js'
import { useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'
import { call, clientFor, scriptedServer } from '../support/scriptedServer.js'

const serve = useFakeServers()

describe('budgets under concurrency', () => {
  test.each([
    { path: 'the 402 path', presend: false },
    { path: 'the pre-send path', presend: true },
  ])('$path: 100 concurrent calls, a budget for 50: 50 paid, 50 refused', async ({ presend }) => {
    const server = await scriptedServer(serve)
    const { provider, calls } = fakeProvider({ reuse: presend })
    // One more payment for the call that makes the pre-send path start.
    const client = clientFor(server.url, { provider, budget: presend ? 5_100n : 5_000n })
    if (presend) await call(client)
    const before = server.paid().length
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) => call(client, i + 1)),
    )
    const paid = results.filter((result) => result.status === 'fulfilled')
    const refused = results.filter(
      (result) => result.status === 'rejected' && result.reason instanceof PaymentRefusedError,
    )
    expect({ paid: paid.length, refused: refused.length }).toEqual({ paid: 50, refused: 50 })
    expect(server.paid().length - before).toBe(50)
    expect(calls.authorized).toHaveLength(presend ? 51 : 50)
    expect(calls.rolledBack).toHaveLength(50)
  })

  test.each([
    { path: 'the 402 path', presend: false },
    { path: 'the pre-send path', presend: true },
  ])('$path: an abort storm leaks no reservation and no listener', async ({ presend }) => {
    const server = await scriptedServer(serve)
    const { provider, calls } = fakeProvider({ reuse: presend })
    const budget = 100n * 200n
    const client = clientFor(server.url, { provider, budget })
    await call(client)
    const callers = Array.from({ length: 100 }, () => new AbortController())
    const pending = callers.map((caller, i) => call(client, i + 1, caller.signal).catch(() => {}))
    // Abort them at every point of their flows: one per turn of the event loop.
    for (const caller of callers) {
      caller.abort()
      await new Promise((resolve) => setImmediate(resolve))
    }
    await Promise.all(pending)
    for (const caller of callers) expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0)
    expect(calls.committed.length + calls.rolledBack.length).toBe(calls.prepared.length)
    // What is left of the budget is exactly what the committed payments did not spend.
    const left = Number(budget / 100n) - calls.committed.length
    for (let i = 0; i < left; i++) await call(client, 1_000 + i)
    expect((await rejectionOf(call(client, 2_000))).name).toBe('PaymentRefusedError')
  })
})
