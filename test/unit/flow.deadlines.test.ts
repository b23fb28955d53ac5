/**
 * Time and cancellation in the payment flow: `paymentTimeout` bounds every stage (a hook, a
 * signer, a provider hook or an answer that never ends), the caller's signal aborted at each
 * stage ends the call with nothing spent or a typed settled failure.
 */
import { getEventListeners } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { Client } from 'viem'
import { describe, expect, test } from 'vitest'
import { PaymentFailedError, type PaymentProvider, PaymentRefusedError } from '../../src/index.js'
import { challengeHeader, fakeProvider } from '../support/fakePayments.js'
import { useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'
import {
  accept,
  call,
  clientFor,
  deferred,
  never,
  paidRequests,
  type Refusal,
  refusals,
  retryingClient,
  scriptedServer,
} from '../support/scriptedServer.js'

const serve = useFakeServers()

describe('deadlines', () => {
  // A deadline lost to the collector hangs: the short test timeout turns that into a failure.
  test('paymentTimeout holds while garbage is collected', { timeout: 10_000 }, async () => {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      // Never answers the paid request.
    })
    const { provider } = fakeProvider()
    const pending = rejectionOf(
      retryingClient(server.url, { provider, paymentTimeout: 300 }).request({
        method: 'eth_blockNumber',
      }),
    )
    // Collect as often as possible while the payment waits: a deadline held only weakly is lost.
    const collector = setInterval(gc, 10)
    const error = await pending.finally(() => clearInterval(collector))
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect((error.cause as Error).message).toBe(
      'The payment did not complete within paymentTimeout (300 ms).',
    )
  })

  test('an onPaymentRequired that never answers ends at paymentTimeout; nothing is held', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      accept(response, request.body)
    })
    let asked = 0
    const { provider, calls } = fakeProvider()
    const client = retryingClient(server.url, {
      provider,
      paymentTimeout: 200,
      budget: 100n,
      // The first answer never comes; the next ones approve.
      onPaymentRequired: () => (asked++ === 0 ? new Promise<boolean>(() => {}) : true),
    })
    const error = await rejectionOf(client.request({ method: 'eth_blockNumber' }))
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(false)
    expect(calls.authorized).toEqual([])
    expect(calls.rolledBack).toHaveLength(1)
    // The whole budget is still there for the next payment.
    expect(await client.request({ method: 'eth_chainId' })).toBe('0x1')
    expect(server.paid()).toHaveLength(1)
  })

  test('a signer that never answers ends at paymentTimeout; nothing is sent', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      accept(response, request.body)
    })
    const { provider: base } = fakeProvider()
    let rolledBack = 0
    const error = await rejectionOf(
      retryingClient(server.url, {
        paymentTimeout: 200,
        provider: {
          ...base,
          async prepare(parameters) {
            const prepared = await base.prepare(parameters)
            return {
              ...prepared,
              authorize: () => new Promise<string>(() => {}),
              rollback: async () => {
                rolledBack++
              },
            }
          },
        },
      }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(false)
    expect(rolledBack).toBe(1)
    expect(server.paid()).toHaveLength(0)
  })

  test('a caller who gives up while the hook thinks gets an abort, and nothing is paid', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      accept(response, request.body)
    })
    const controller = new AbortController()
    const { provider } = fakeProvider()
    const error = await rejectionOf(
      retryingClient(server.url, {
        provider,
        onPaymentRequired: () => {
          controller.abort()
          return new Promise<boolean>(() => {})
        },
      }).request({ method: 'eth_blockNumber' }, { signal: controller.signal }),
    )
    expect(error.name).toBe('AbortError')
    expect(server.paid()).toHaveLength(0)
  })

  test('a caller who gives up after the credential left: PaymentFailedError, settled', async () => {
    const arrived = paidRequests(1)
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      arrived.record()
      // Never answers the paid request.
    })
    const controller = new AbortController()
    const { provider, calls } = fakeProvider()
    const pending = rejectionOf(
      retryingClient(server.url, { provider }).request(
        { method: 'eth_blockNumber' },
        { signal: controller.signal },
      ),
    )
    await arrived.done
    controller.abort()
    const error = await pending
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect((error.cause as Error).name).toBe('AbortError')
    expect(calls.committed).toHaveLength(1)
    expect(server.paid()).toHaveLength(1)
  })

  test('a paid answer whose body stalls ends at paymentTimeout', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      // Headers and half a body, then nothing.
      response.writeHead(200, { 'content-type': 'application/json' })
      response.write('{"jsonrpc":"2.0",')
    })
    const { provider } = fakeProvider()
    const error = await rejectionOf(
      retryingClient(server.url, { provider, paymentTimeout: 300 }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect(server.paid()).toHaveLength(1)
  })
})

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
    const server = await scriptedServer(serve)
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
    const server = await scriptedServer(serve)
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
    const server = await scriptedServer(serve)
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
      const server = await scriptedServer(serve)
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
    const server = await scriptedServer(serve)
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
    const server = await scriptedServer(serve)
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
    const server = await scriptedServer(serve)
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
