/**
 * The payment flow (the 402 path and the pre-send path together) as an attacker would test it,
 * through the public API: scripted hostile answers, provider hooks that never answer, caller
 * aborts at every stage, abort storms and budgets under concurrency, and what an idle client
 * still holds once its calls are done.
 */

import { getEventListeners } from 'node:events'
import type { ServerResponse } from 'node:http'
import { type Client, createClient } from 'viem'
import { describe, expect, test } from 'vitest'
import {
  InvalidQuoteError,
  type MppHttpTransportConfig,
  mppHttp,
  PaymentFailedError,
  type PaymentProvider,
  PaymentRefusedError,
} from '../../src/index.js'
import { challengeHeader, fakeChain, fakeProvider, receiptHeader } from '../support/fakePayments.js'
import { rpcResult, useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'

const chain = fakeChain
const serve = useFakeServers()

const problemType = (name: string) => `https://paymentauth.org/problems/${name}`

const accept = (response: ServerResponse, body: string) =>
  response
    .writeHead(200, { 'content-type': 'application/json', 'payment-receipt': receiptHeader() })
    .end(rpcResult(body))

/** How the server answers a paid request instead of accepting it. */
type Refusal = {
  status: 402 | 410
  problem?: string
  /** Whether the answer offers a fresh challenge. */
  fresh: boolean
}

const refusals: Record<string, Refusal> = {
  '402 expired': { status: 402, problem: 'payment-expired', fresh: true },
  '402 stale voucher': { status: 402, problem: 'session/stale-voucher', fresh: true },
  '402 plain': { status: 402, fresh: true },
  '402 plain, no challenge': { status: 402, fresh: false },
  '410 fresh': { status: 410, problem: 'session/channel-not-found', fresh: true },
  '410 no challenge': { status: 410, problem: 'session/channel-not-found', fresh: false },
}

/**
 * A server that asks unpaid requests for payment with a fresh challenge (valid for `lifetime`
 * ms), accepts paid ones, except that it answers the next paid requests as `script` says.
 */
async function scriptedServer({ lifetime = 60_000 }: { lifetime?: number } = {}) {
  const script: Refusal[] = []
  const fresh = () => challengeHeader({ expires: new Date(Date.now() + lifetime) })
  const server = await serve((request, response) => {
    if (!request.authorization)
      return response.writeHead(402, { 'www-authenticate': fresh() }).end()
    const refusal = script.shift()
    if (!refusal) return accept(response, request.body)
    const headers: Record<string, string> = {}
    if (refusal.fresh) headers['www-authenticate'] = fresh()
    if (refusal.problem) headers['content-type'] = 'application/problem+json'
    response
      .writeHead(refusal.status, headers)
      .end(refusal.problem ? JSON.stringify({ type: problemType(refusal.problem) }) : undefined)
  })
  return { ...server, script }
}

const clientFor = (url: string, config: MppHttpTransportConfig) =>
  createClient({ chain, transport: mppHttp(url, config) })

/** `eth_getBalance` of the address numbered `id`: distinct calls, for distinct requests. */
const call = (client: Client, id = 0, signal?: AbortSignal) =>
  client.request(
    { method: 'eth_getBalance', params: [`0x${id.toString(16).padStart(40, '0')}`, 'latest'] },
    signal ? { signal } : undefined,
  )

/** A promise and the function that settles it, for waiting on an event. */
function deferred<value = void>() {
  let resolve!: (value: value) => void
  const promise = new Promise<value>((resolve_) => {
    resolve = resolve_
  })
  return { promise, resolve }
}

const never = <value>() => new Promise<value>(() => {})

/**
 * What call `id` rejects with when its caller gives up once `reached` resolves, and the
 * caller's signal, to check that nothing still listens to it.
 */
async function abortedOnceReached(client: Client, id: number, reached: Promise<unknown>) {
  const caller = new AbortController()
  const pending = rejectionOf(call(client, id, caller.signal))
  await reached
  caller.abort()
  return { error: await pending, signal: caller.signal }
}

/** `provider`, whose prepared payments have `hook` replaced by `replacement` while `active()`. */
function replacingHook(
  provider: PaymentProvider,
  hook: 'authorize' | 'commit' | 'rollback',
  replacement: () => Promise<never>,
  active: () => boolean = () => true,
): PaymentProvider {
  return {
    ...provider,
    async prepare(parameters) {
      const prepared = await provider.prepare(parameters)
      return active() ? { ...prepared, [hook]: replacement } : prepared
    },
  }
}

describe('no sequence of rejections pays more than three times for one request', () => {
  const names = Object.keys(refusals)
  const sequences = names.flatMap((a) => names.flatMap((b) => names.map((c) => [a, b, c])))

  test.each([
    { path: 'the 402 path', presend: false },
    { path: 'the pre-send path', presend: true },
  ])(
    `$path: every sequence of ${sequences.length} scripted rejections, non-bearer`,
    async ({ presend }) => {
      const server = await scriptedServer()
      const { provider, calls } = fakeProvider({ recover: true, reuse: presend })
      const client = clientFor(server.url, { provider, retryCount: 3, retryDelay: 1 })
      await call(client)
      for (const [id, sequence] of sequences.entries()) {
        const before = { sent: server.paid().length, prepared: calls.prepared.length }
        server.script.splice(0, Infinity, ...sequence.map((name) => refusals[name] as Refusal))
        await call(client, id + 1).catch(() => {})
        const sent = server.paid().length - before.sent
        expect({ sequence, sent: sent <= 3 }).toEqual({ sequence, sent: true })
        expect(calls.prepared.length - before.prepared).toBe(sent)
      }
      // Every payment is settled one way or the other.
      expect(calls.committed.length + calls.rolledBack.length).toBe(calls.prepared.length)
    },
  )

  test.each([
    { path: 'the 402 path', presend: false },
    { path: 'the pre-send path', presend: true },
  ])('$path: a bearer payment is sent once whatever the server says', async ({ presend }) => {
    const server = await scriptedServer()
    const { provider } = fakeProvider({ bearer: true, reuse: presend })
    const client = clientFor(server.url, { provider, retryCount: 3, retryDelay: 1 })
    await call(client)
    for (const [id, sequence] of sequences.entries()) {
      const before = server.paid().length
      server.script.splice(0, Infinity, ...sequence.map((name) => refusals[name] as Refusal))
      const error = (await rejectionOf(call(client, id + 1))) as PaymentFailedError
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error.settled).toBe(true)
      expect({ sequence, sent: server.paid().length - before }).toEqual({ sequence, sent: 1 })
    }
  })
})

describe('a server that mints challenges about to expire, then calls them expired', () => {
  test('a bearer payment is given the benefit of clock skew once per request: paid twice, not three times', async () => {
    const server = await scriptedServer({ lifetime: 1_000 })
    server.script.push(...Array.from({ length: 3 }, () => refusals['402 expired'] as Refusal))
    const { provider } = fakeProvider({ bearer: true })
    const client = clientFor(server.url, { provider })
    const error = (await rejectionOf(call(client, 1))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.settled).toBe(true)
    expect(error.shortMessage).toBe(
      'The server said the challenge had expired, but it had not; the payment is not made again.',
    )
    expect(server.paid()).toHaveLength(2)
  })
})

describe('provider hooks that never answer end at paymentTimeout', () => {
  /** The fake provider, with its prepared payments' `hook` replaced by one that never answers. */
  function hanging(hook: 'commit' | 'rollback') {
    const fake = fakeProvider()
    let hang = true
    const provider = replacingHook(fake.provider, hook, never, () => hang)
    return { ...fake, provider, stopHanging: () => (hang = false) }
  }

  // A hook that holds the call fails by the test's own timeout.
  test('a commit that never answers after the server accepted: the call ends at paymentTimeout with the answer it has', {
    timeout: 5_000,
  }, async () => {
    const server = await scriptedServer()
    const { provider, stopHanging } = hanging('commit')
    const client = clientFor(server.url, { provider, paymentTimeout: 200, budget: 200n })
    // The whole answer arrived before the commit hung (in-band signalling reads small JSON
    // answers at once): the call returns it once the deadline ends the wait on the commit.
    expect(await call(client, 1)).toBe('0x1')
    stopHanging()
    // The accepted payment is spent; what is left pays one more.
    expect(await call(client, 2)).toBe('0x1')
    expect((await rejectionOf(call(client, 3))).name).toBe('PaymentRefusedError')
    expect(server.paid()).toHaveLength(2)
  })

  test('a rollback that never answers after a rejection: PaymentFailedError, not paid again', {
    timeout: 5_000,
  }, async () => {
    const server = await scriptedServer()
    server.script.push(refusals['402 expired'] as Refusal)
    const { provider, calls } = hanging('rollback')
    const client = clientFor(server.url, { provider, paymentTimeout: 200 })
    const error = (await rejectionOf(call(client, 1))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.shortMessage).toBe('The server rejected the payment, and undoing it failed.')
    expect(error.settled).toBe(false)
    expect(calls.authorized).toHaveLength(1)
    expect(server.paid()).toHaveLength(1)
  })

  test('a rollback that never answers after a refusal: PaymentRefusedError, budget intact', {
    timeout: 5_000,
  }, async () => {
    const server = await scriptedServer()
    const { provider, calls, stopHanging } = hanging('rollback')
    let refuse = true
    const client = clientFor(server.url, {
      provider,
      paymentTimeout: 200,
      budget: 100n,
      onPaymentRequired: () => !refuse,
    })
    const error = (await rejectionOf(call(client, 1))) as PaymentRefusedError
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect(error.reason).toBe('onPaymentRequired')
    refuse = false
    stopHanging()
    expect(await call(client, 2)).toBe('0x1')
    expect(calls.authorized).toHaveLength(1)
  })

  test.each(['prepare', 'recover'] as const)(
    'a %s that never answers: PaymentFailedError, nothing held',
    async (hook) => {
      const server = await scriptedServer()
      if (hook === 'recover') server.script.push(refusals['410 fresh'] as Refusal)
      const fake = fakeProvider()
      let hang = true
      const provider: PaymentProvider = {
        ...fake.provider,
        prepare: (parameters) =>
          hook === 'prepare' && hang ? never() : fake.provider.prepare(parameters),
        recover: () => (hang ? never() : Promise.resolve(false)),
      }
      const client = clientFor(server.url, { provider, paymentTimeout: 200, budget: 100n })
      const error = (await rejectionOf(call(client, 1))) as PaymentFailedError
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error.settled).toBe(false)
      hang = false
      // A non-bearer payment the server rejected is not spent: the whole budget is left.
      expect(await call(client, 2)).toBe('0x1')
    },
  )

  test('a 402 whose body never ends: the payment goes on', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization) {
        response.writeHead(402, { 'www-authenticate': challengeHeader() })
        response.write('{"type":')
        return
      }
      accept(response, request.body)
    })
    const { provider } = fakeProvider()
    const client = clientFor(server.url, { provider, paymentTimeout: 1_000 })
    expect(await call(client, 1)).toBe('0x1')
  })
})

describe("the caller's signal, aborted at each stage", () => {
  /**
   * A client whose every stage can be held: `stage` names where the next call waits for the
   * test to abort it. Its budget pays exactly one payment.
   */
  async function staged() {
    const server = await scriptedServer()
    const fake = fakeProvider({ recover: true })
    const reached = deferred()
    let stage: string | undefined
    const holdAt = (name: string) => {
      if (stage !== name) return undefined
      stage = undefined
      reached.resolve()
      return never<never>()
    }
    const provider: PaymentProvider = {
      ...fake.provider,
      async prepare(parameters) {
        await (holdAt('prepare') ?? Promise.resolve())
        const prepared = await fake.provider.prepare(parameters)
        return {
          ...prepared,
          authorize: () => holdAt('authorize') ?? prepared.authorize(),
        }
      },
      recover: (parameters) => holdAt('recover') ?? fake.provider.recover!(parameters),
    }
    const client = clientFor(server.url, {
      provider,
      budget: 100n,
      retryCount: 3,
      retryDelay: 1,
      onPaymentRequired: () => holdAt('onPaymentRequired') ?? true,
    })
    return { server, fake, client, reached: reached.promise, at: (name: string) => (stage = name) }
  }

  test.each(['prepare', 'onPaymentRequired', 'authorize', 'recover'])(
    'while %s waits: the abort, nothing spent, the budget whole',
    async (stage) => {
      const { server, fake, client, reached, at } = await staged()
      if (stage === 'recover') server.script.push(refusals['410 fresh'] as Refusal)
      at(stage)
      const { error, signal } = await abortedOnceReached(client, 1, reached)
      expect(error.name).toBe('AbortError')
      expect(getEventListeners(signal, 'abort')).toHaveLength(0)
      expect(fake.calls.committed).toEqual([])
      // The budget pays exactly one payment: nothing is held by the aborted call.
      expect(await call(client, 2)).toBe('0x1')
      expect(fake.calls.committed).toHaveLength(1)
    },
  )

  test('while the server is asked for a fresh challenge: the abort, the budget whole', async () => {
    const asked = deferred()
    let paid = 0
    const server = await serve((request, response) => {
      if (request.authorization) {
        // The first payment: 410 without a challenge, so the flow asks for one.
        if (paid++ === 0) return response.writeHead(410).end()
        return accept(response, request.body)
      }
      // The request asking for a fresh challenge is held until the caller gives up.
      if (paid === 1) return asked.resolve()
      response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
    })
    const { provider, calls } = fakeProvider({ recover: true })
    const client = clientFor(server.url, { provider, budget: 100n })
    expect((await abortedOnceReached(client, 1, asked.promise)).error.name).toBe('AbortError')
    expect(calls.rolledBack).toHaveLength(1)
    paid = 2
    expect(await call(client, 2)).toBe('0x1')
  })

  test('while the provider records an accepted payment: PaymentFailedError, settled', {
    timeout: 5_000,
  }, async () => {
    const server = await scriptedServer()
    const committing = deferred()
    const provider = replacingHook(fakeProvider().provider, 'commit', () => {
      committing.resolve()
      return never()
    })
    const client = clientFor(server.url, { provider, budget: 100n })
    const { error: rejected } = await abortedOnceReached(client, 1, committing.promise)
    const error = rejected as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.settled).toBe(true)
    expect((error.cause as Error).name).toBe('AbortError')
    // The payment the server accepted is spent.
    expect((await rejectionOf(call(client, 2))).name).toBe('PaymentRefusedError')
  })

  test('already aborted: the abort, nothing asked of the server', async () => {
    const { server, client } = await staged()
    const caller = new AbortController()
    caller.abort()
    expect((await rejectionOf(call(client, 1, caller.signal))).name).toBe('AbortError')
    expect(server.requests).toHaveLength(0)
  })

  test('while a pre-sent payment is being signed: the abort, nothing sent', async () => {
    const server = await scriptedServer()
    const reached = deferred()
    let hold = false
    const signing = () => {
      reached.resolve()
      return never<never>()
    }
    const provider = replacingHook(
      fakeProvider({ reuse: true }).provider,
      'authorize',
      signing,
      () => hold,
    )
    const client = clientFor(server.url, { provider, budget: 200n })
    await call(client, 1)
    hold = true
    expect((await abortedOnceReached(client, 2, reached.promise)).error.name).toBe('AbortError')
    expect(server.requests).toHaveLength(2)
    hold = false
    expect(await call(client, 3)).toBe('0x1')
  })
})

describe('budgets under concurrency', () => {
  test.each([
    { path: 'the 402 path', presend: false },
    { path: 'the pre-send path', presend: true },
  ])('$path: 100 concurrent calls, a budget for 50: 50 paid, 50 refused', async ({ presend }) => {
    const server = await scriptedServer()
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
    const server = await scriptedServer()
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

describe('an idle client holds nothing', () => {
  /** The kinds of resources that keep the process alive, counted by kind. */
  const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length

  test.each([
    { path: 'the 402 path', presend: false },
    { path: 'the pre-send path', presend: true },
  ])('$path: after paid calls, no timer is left', async ({ presend }) => {
    const server = await scriptedServer()
    const { provider } = fakeProvider({ reuse: presend })
    const client = clientFor(server.url, { provider })
    const before = timers()
    for (let i = 0; i < 3; i++) await call(client, i)
    // A rejected, recovered one too.
    server.script.push(refusals['410 fresh'] as Refusal)
    await call(client, 10).catch(() => {})
    expect(timers()).toBe(before)
  })

  test('a paid call that failed leaves no timer either', async () => {
    const server = await scriptedServer()
    server.script.push(refusals['402 plain, no challenge'] as Refusal)
    const { provider } = fakeProvider({ bearer: true })
    const client = clientFor(server.url, { provider })
    const before = timers()
    expect(await rejectionOf(call(client, 1))).toBeInstanceOf(PaymentFailedError)
    expect(timers()).toBe(before)
  })
})

describe('a provider hook that throws synchronously', () => {
  test('recover: PaymentFailedError for the rejection, nothing taken', async () => {
    const server = await scriptedServer()
    server.script.push(refusals['410 fresh'] as Refusal)
    const { provider } = fakeProvider()
    const client = clientFor(server.url, {
      provider: {
        ...provider,
        recover() {
          throw new Error('not async')
        },
      },
    })
    const error = (await rejectionOf(call(client, 1))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.shortMessage).toBe('The server rejected the payment, and recovering failed.')
    expect(error.status).toBe(410)
    expect(error.settled).toBe(false)
  })
})

describe('a custom provider whose quote lacks a field', () => {
  test('`fee` missing: an InvalidQuoteError naming it, nothing authorized, the payment rolled back', async () => {
    const server = await scriptedServer()
    const { provider, calls } = fakeProvider()
    const withoutFee: PaymentProvider = {
      ...provider,
      async prepare(parameters) {
        const prepared = await provider.prepare(parameters)
        const { fee: _, ...quote } = prepared.quote
        return { ...prepared, quote: quote as typeof prepared.quote }
      },
    }
    const error = await rejectionOf(call(clientFor(server.url, { provider: withoutFee })))
    expect(error).toBeInstanceOf(PaymentFailedError)
    const invalid = (error as PaymentFailedError).walk(
      (cause) => cause instanceof InvalidQuoteError,
    )
    expect(invalid).toBeInstanceOf(InvalidQuoteError)
    expect(invalid).toMatchObject({
      field: 'fee',
      shortMessage:
        "The payment provider's quote has no valid `fee`: a non-negative bigint in base units.",
    })
    expect(calls.authorized).toEqual([])
    expect(calls.rolledBack).toHaveLength(1)
  })
})
