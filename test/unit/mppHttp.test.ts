import type { ServerResponse } from 'node:http'
import { Challenge } from 'mppx'
import { HttpResponse, http as msw } from 'msw'
import { setupServer } from 'msw/node'
import {
  createClient,
  fallback,
  HttpRequestError,
  http,
  InternalRpcError,
  TimeoutError,
} from 'viem'
import { describe, expect, test } from 'vitest'
import {
  maxPaymentRounds,
  mppHttp,
  PaymentFailedError,
  PaymentRefusedError,
  PaymentRequiredError,
} from '../../src/index.js'
import {
  challengeHeader,
  currency,
  fakeChain,
  fakeProvider,
  paidChallengeId,
  recipient,
} from '../support/fakePayments.js'
import { answerRpc, useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'
import { accept, clientFor, paywall, retryingClient } from '../support/scriptedServer.js'

const chain = fakeChain
const serve = useFakeServers()

function answer402(
  response: ServerResponse,
  wwwAuthenticate?: string | string[],
  problem?: object,
) {
  response.writeHead(402, {
    ...(wwwAuthenticate ? { 'www-authenticate': wwwAuthenticate } : {}),
    ...(problem ? { 'content-type': 'application/problem+json' } : {}),
  })
  response.end(problem ? JSON.stringify(problem) : undefined)
}

/**
 * A paywall that answers the first paid request with `refuse(response)` and serves the later ones
 * as a node would: for the flows that recover from one refusal and pay again.
 */
function refusingFirstPayment(refuse: (response: ServerResponse) => unknown) {
  let paid = 0
  return paywall({
    paid: (request, response) =>
      ++paid === 1 ? refuse(response) : answerRpc(response, request.body),
  })
}

describe('without a 402', () => {
  test('it answers, fails and retries exactly as http() does', async () => {
    let calls = 0
    const server = await serve((request, response) => {
      calls++
      if (JSON.parse(request.body).method === 'eth_chainId')
        return answerRpc(response, request.body, '0x539')
      response.writeHead(503).end('busy')
    })
    const { provider, calls: providerCalls } = fakeProvider()
    const plain = createClient({
      chain,
      transport: http(server.url, { retryCount: 2, retryDelay: 1 }),
    })
    const paid = clientFor(server.url, { provider, retryCount: 2, retryDelay: 1 })

    expect(await paid.request({ method: 'eth_chainId' })).toBe(
      await plain.request({ method: 'eth_chainId' }),
    )
    calls = 0
    const plainError = await rejectionOf(plain.request({ method: 'eth_blockNumber' }))
    const plainCalls = calls
    calls = 0
    const paidError = await rejectionOf(paid.request({ method: 'eth_blockNumber' }))
    expect(paidError).toBeInstanceOf(HttpRequestError)
    expect((paidError as HttpRequestError).status).toBe(503)
    expect(paidError.constructor).toBe(plainError.constructor)
    expect(calls).toBe(plainCalls)
    expect(calls).toBe(3)
    expect(server.paid()).toHaveLength(0)
    expect(providerCalls.prepared).toHaveLength(0)
  })
})

describe('timeouts without a 402', () => {
  test('a slow unpaid answer is a TimeoutError, retried as http() does', async () => {
    const server = await serve(async (request, response) => {
      await new Promise((resolve) => setTimeout(resolve, 200))
      answerRpc(response, request.body)
    })
    const config = { timeout: 50, retryCount: 1, retryDelay: 1 }
    const plain = createClient({ chain, transport: http(server.url, config) })
    const plainError = await rejectionOf(plain.request({ method: 'eth_blockNumber' }))
    const plainCalls = server.requests.length
    const paid = clientFor(server.url, { provider: fakeProvider().provider, ...config })
    const paidError = await rejectionOf(paid.request({ method: 'eth_blockNumber' }))
    expect(paidError).toBeInstanceOf(TimeoutError)
    expect(paidError.constructor).toBe(plainError.constructor)
    expect(paidError.message).toBe(plainError.message)
    expect(plainCalls).toBe(2)
    expect(server.requests.length - plainCalls).toBe(2)
  })
})

describe('stalled bodies without a 402', () => {
  test('a body that stops arriving is a TimeoutError, as with http()', async () => {
    const server = await serve((_, response) => {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.write('{"jsonrpc":"2.0",')
    })
    const config = { timeout: 100, retryCount: 0 }
    const plain = createClient({ chain, transport: http(server.url, config) })
    const plainError = await rejectionOf(plain.request({ method: 'eth_blockNumber' }))
    const paid = clientFor(server.url, { provider: fakeProvider().provider, ...config })
    const paidError = await rejectionOf(paid.request({ method: 'eth_blockNumber' }))
    expect(plainError).toBeInstanceOf(TimeoutError)
    expect(paidError).toBeInstanceOf(TimeoutError)
  })
})

describe('viem retries', () => {
  const internalError = (body: string) =>
    JSON.stringify({
      jsonrpc: '2.0',
      id: JSON.parse(body).id,
      error: { code: -32603, message: 'try again' },
    })

  test('an unpaid JSON-RPC error is retried and typed exactly as http() does', async () => {
    const server = await serve((request, response) =>
      response
        .writeHead(200, { 'content-type': 'application/json' })
        .end(internalError(request.body)),
    )
    const plain = createClient({
      chain,
      transport: http(server.url, { retryCount: 2, retryDelay: 1 }),
    })
    const plainError = await rejectionOf(plain.request({ method: 'eth_blockNumber' }))
    const plainCalls = server.requests.length
    const paid = clientFor(server.url, {
      provider: fakeProvider().provider,
      retryCount: 2,
      retryDelay: 1,
    })
    const paidError = await rejectionOf(paid.request({ method: 'eth_blockNumber' }))
    expect(plainCalls).toBe(3)
    expect(server.requests.length - plainCalls).toBe(3)
    expect(paidError).toBeInstanceOf(InternalRpcError)
    expect(paidError.constructor).toBe(plainError.constructor)
    expect((paidError.cause as Error).constructor).toBe((plainError.cause as Error).constructor)
    expect(paidError.message).toBe(plainError.message)
  })

  test('a paid attempt that fails is not retried: one call, one payment', async () => {
    const server = await serve(
      paywall({
        paid: (request, response) => {
          response
            .writeHead(200, { 'content-type': 'application/json' })
            .end(internalError(request.body))
        },
      }),
    )
    const { provider, calls } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider, retryCount: 3, retryDelay: 1 }).request({
        method: 'eth_blockNumber',
      }),
    )
    // Retrying it would pay again: the upstream's error, as http() types it, without a retry.
    expect(error).toBeInstanceOf(InternalRpcError)
    expect(calls.authorized).toHaveLength(1)
    expect(server.requests).toHaveLength(2)
  })

  test('a call in a paid batch that fails is not retried', async () => {
    const server = await serve(
      paywall({
        paid: (request, response) => {
          const calls = JSON.parse(request.body) as { id: number; method: string }[]
          response
            .writeHead(200, { 'content-type': 'application/json' })
            .end(
              JSON.stringify(
                calls.map((call) =>
                  call.method === 'eth_gasPrice'
                    ? { jsonrpc: '2.0', id: call.id, error: { code: -32603, message: 'try again' } }
                    : { jsonrpc: '2.0', id: call.id, result: '0x1' },
                ),
              ),
            )
        },
      }),
    )
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, { provider, batch: true, retryCount: 3, retryDelay: 1 })
    const results = await Promise.allSettled([
      client.request({ method: 'eth_blockNumber' }),
      client.request({ method: 'eth_gasPrice' }),
    ])
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected'])
    expect(calls.authorized).toHaveLength(1)
    expect(server.requests).toHaveLength(2)
  })
})

describe('paying a 402', () => {
  test('pays once and resends the identical body with the credential', async () => {
    const server = await serve(paywall())
    const { provider, calls } = fakeProvider()
    const receipts: unknown[] = []
    const client = clientFor(server.url, {
      provider,
      onReceipt: ({ receipt, quote }) =>
        receipts.push({ reference: receipt?.reference, amount: quote.amount }),
    })

    expect(await client.request({ method: 'eth_blockNumber' })).toBe('0x1')
    expect(server.requests).toHaveLength(2)
    const [probe, paid] = server.requests
    expect(probe?.authorization).toBeUndefined()
    expect(paid?.body).toBe(probe?.body)
    expect(paidChallengeId(paid?.authorization)).toBe(calls.prepared[0])
    expect(calls.authorized).toEqual(calls.prepared)
    expect(calls.committed).toEqual(calls.prepared)
    expect(calls.rolledBack).toEqual([])
    expect(receipts).toEqual([{ reference: '0xabc', amount: 100n }])
  })

  test('a batch of calls costs one payment', async () => {
    const server = await serve(paywall())
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, { provider, batch: true })

    const results = await Promise.all([
      client.request({ method: 'eth_blockNumber' }),
      client.request({ method: 'eth_chainId' }),
      client.request({ method: 'eth_gasPrice' }),
    ])
    expect(results).toEqual(['0x1', '0x1', '0x1'])
    expect(calls.authorized).toHaveLength(1)
    expect(server.requests).toHaveLength(2)
    expect(JSON.parse(server.requests[1]!.body)).toHaveLength(3)
  })

  test('the first supported challenge in server order is paid, and a repeated one once', async () => {
    const first = challengeHeader({ id: 'first' })
    const server = await serve(
      paywall({
        challenge: () => [
          challengeHeader({ method: 'other', id: 'other' }),
          first,
          first,
          challengeHeader({ id: 'second' }),
        ],
      }),
    )
    const { provider, calls } = fakeProvider()
    await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })
    expect(calls.prepared).toEqual(['first'])
  })

  test("the provider's Accept-Payment ranks the challenges", async () => {
    const server = await serve(
      paywall({
        challenge: () => [
          challengeHeader({ intent: 'charge', id: 'charge' }),
          challengeHeader({ intent: 'session', id: 'session' }),
        ],
      }),
    )
    const { provider, calls } = fakeProvider({ acceptPayment: 'test/session, test/charge;q=0.5' })
    await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })
    expect(calls.prepared).toEqual(['session'])
  })

  test('a Payment challenge among other schemes is found', async () => {
    const server = await serve(
      paywall({
        challenge: () =>
          `Bearer realm="api", error="invalid_token", ${challengeHeader({ id: 'mixed' })}, Basic realm="x"`,
      }),
    )
    const { provider, calls } = fakeProvider()
    await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })
    expect(calls.prepared).toEqual(['mixed'])
  })

  test('a same-origin redirect of the paid request is followed with the credential', async () => {
    const server = await serve(
      paywall({
        paid: (request, response) => {
          if (request.url === '/') return response.writeHead(307, { location: '/moved' }).end()
          answerRpc(response, request.body)
        },
      }),
    )
    const { provider } = fakeProvider()
    expect(await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })).toBe(
      '0x1',
    )
    expect(server.paid().map((request) => request.url)).toEqual(['/', '/moved'])
  })
})

describe('nothing can pay', () => {
  test.each([
    ['no WWW-Authenticate header', undefined],
    ['a garbled header', 'Payment id="unterminated, realm=, request=!!!'],
    ['only other schemes', 'Bearer realm="api", Basic realm="x"'],
    ['a challenge without a request', 'Payment id="x", realm="r", method="test", intent="charge"'],
  ])('%s: PaymentRequiredError, nothing signed', async (_, header) => {
    const server = await serve((_, response) => answer402(response, header))
    const { provider, calls } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('noChallenge')
    expect(calls.prepared).toEqual([])
    expect(server.requests).toHaveLength(1)
  })

  test.each([
    [
      'an unknown method',
      challengeHeader({ method: 'other', id: 'c1' }),
      'other/charge: not supported by the provider',
    ],
    [
      'an unknown intent',
      challengeHeader({ intent: 'authorize', id: 'c4' }),
      "test/authorize: not in the provider's Accept-Payment",
    ],
    [
      'another chain',
      challengeHeader({ chainId: 1, id: 'c2' }),
      "test/charge: chain 1, not the viem client's chain 1337",
    ],
    [
      'an expired challenge',
      challengeHeader({ expires: new Date(Date.now() - 1_000), id: 'c3' }),
      'test/charge: expired',
    ],
  ])('%s: PaymentRequiredError saying why', async (_, header, why) => {
    const server = await serve((_, response) => answer402(response, header))
    const { provider, calls } = fakeProvider({ acceptPayment: 'test/charge, other/charge' })
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('noSupportedChallenge')
    expect((error as PaymentRequiredError).metaMessages).toContain(`  ${why}`)
    expect(calls.prepared).toEqual([])
  })

  test('an oversized header is refused whole, nothing signed', async () => {
    // Node's HTTP parser stops real servers' headers at 16 KiB; msw delivers any size, as a
    // browser may.
    const url = 'https://oversized.paid.test/'
    const huge = [
      challengeHeader(),
      `Payment id="big", realm="r", method="test", intent="charge", request="${'A'.repeat(40_000)}"`,
    ]
    const mock = setupServer(
      msw.post(
        url,
        () =>
          new HttpResponse(null, { status: 402, headers: { 'www-authenticate': huge.join(', ') } }),
      ),
    )
    mock.listen({ onUnhandledRequest: 'error' })
    try {
      const { provider, calls } = fakeProvider()
      const error = await rejectionOf(
        clientFor(url, { provider }).request({ method: 'eth_blockNumber' }),
      )
      expect(error).toBeInstanceOf(PaymentRequiredError)
      expect((error as PaymentRequiredError).reason).toBe('noChallenge')
      expect(calls.prepared).toEqual([])
    } finally {
      mock.close()
    }
  })

  test('no provider: PaymentRequiredError with set-up guidance', async () => {
    const server = await serve(paywall())
    const error = await rejectionOf(clientFor(server.url).request({ method: 'eth_blockNumber' }))
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('noProvider')
    expect(error.message).toContain('mppHttp(url, { provider: tempo({ account, client }) })')
  })
})

describe('spending policy', () => {
  test.each([
    ['maxAmount', { maxAmount: 99n }],
    ['budget', { budget: 99n }],
    ['onPaymentRequired', { onPaymentRequired: () => false }],
  ] as const)('%s refuses before anything is signed or sent', async (reason, policy) => {
    const server = await serve(paywall())
    const { provider, calls } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider, ...policy, retryCount: 3 }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe(reason)
    expect((error as PaymentRefusedError).amount).toBe(100n)
    expect(calls.authorized).toEqual([])
    expect(calls.rolledBack).toEqual(calls.prepared)
    // Not retried: one unpaid request, no credential.
    expect(server.requests).toHaveLength(1)
    expect(server.paid()).toHaveLength(0)
  })

  test('maxAmount and budget hold at their exact boundaries', async () => {
    const server = await serve(paywall())
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, { provider, maxAmount: 100n, budget: 200n })
    await client.request({ method: 'eth_blockNumber' })
    await client.request({ method: 'eth_blockNumber' })
    const error = await rejectionOf(client.request({ method: 'eth_blockNumber' }))
    expect((error as PaymentRefusedError).reason).toBe('budget')
    expect(calls.committed).toHaveLength(2)
    expect(server.paid()).toHaveLength(2)
  })

  test('the fee a payment really cost, once read, gives the rest of its most fee back to the budget', async () => {
    const server = await serve(paywall())
    // Each payment of 100 quotes a most fee of 50 and really costs 10: two fit a budget of
    // 260 (110 + 150) only once the first one's fee is read.
    let read: (fee: bigint | undefined) => void = () => {}
    const fees: Promise<bigint | undefined>[] = []
    const { provider, calls } = fakeProvider({
      fee: 50n,
      feePaid: () => {
        const fee = new Promise<bigint | undefined>((resolve) => {
          read = resolve
        })
        fees.push(fee)
        return fee
      },
    })
    const client = clientFor(server.url, { provider, budget: 260n })
    await client.request({ method: 'eth_blockNumber' })
    // The second payment waits for the first one's fee rather than being refused.
    const second = client.request({ method: 'eth_chainId' })
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(calls.prepared).toHaveLength(2)
    expect(calls.authorized).toHaveLength(1)
    read(10n)
    await second
    expect(calls.authorized).toHaveLength(2)
    // Its own fee is read as not known: the most fee stays spent (110 + 150 = 260), nothing fits.
    read(undefined)
    await fees[1]
    const error = await rejectionOf(client.request({ method: 'eth_gasPrice' }))
    expect((error as PaymentRefusedError).reason).toBe('budget')
    expect((error as PaymentRefusedError).message).toContain('Limit: 0')
  })

  test('a fee read that never answers holds a payment the budget refuses 5 s at most', async () => {
    const server = await serve(paywall())
    const { provider, calls } = fakeProvider({ fee: 50n, feePaid: () => new Promise(() => {}) })
    const client = clientFor(server.url, { provider, budget: 200n })
    await client.request({ method: 'eth_blockNumber' })
    const error = await rejectionOf(client.request({ method: 'eth_chainId' }))
    expect((error as PaymentRefusedError).reason).toBe('budget')
    expect(calls.authorized).toHaveLength(1)
  }, 15_000)

  test('onPaymentRequired sees the decoded cost', async () => {
    const server = await serve(paywall({ challenge: () => challengeHeader({ amount: '4242' }) }))
    const { provider } = fakeProvider()
    const events: unknown[] = []
    await clientFor(`${server.url}/secret-path?key=secret`, {
      provider,
      onPaymentRequired: (event) => {
        events.push({
          amount: event.quote.amount,
          intent: event.quote.intent,
          origin: event.origin,
        })
      },
    }).request({ method: 'eth_blockNumber' })
    expect(events).toEqual([{ amount: 4242n, intent: 'charge', origin: server.url }])
  })
})

describe('after the credential was sent', () => {
  test('a 402 with problem details: PaymentFailedError, rolled back, not paid again', async () => {
    const problem = {
      type: 'https://paymentauth.org/problems/verification-failed',
      title: 'Verification failed',
      detail: 'insufficient balance',
    }
    const server = await serve((_, response) => answer402(response, challengeHeader(), problem))
    const { provider, calls } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider, retryCount: 3, budget: 100n }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).status).toBe(402)
    expect((error as PaymentFailedError).problem).toMatchObject(problem)
    expect((error as PaymentFailedError).settled).toBe(false)
    expect(calls.authorized).toHaveLength(1)
    expect(calls.rolledBack).toEqual(calls.prepared)
    expect(calls.committed).toEqual([])
    expect(server.paid()).toHaveLength(1)
  })

  test(`a server that always says the challenge expired is paid at most ${maxPaymentRounds} times`, async () => {
    const server = await serve((_, response) =>
      answer402(response, challengeHeader(), {
        type: 'https://paymentauth.org/problems/payment-expired',
      }),
    )
    const { provider } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.message).toContain(`rejected ${maxPaymentRounds} payments`)
    expect(server.paid()).toHaveLength(maxPaymentRounds)
    expect(
      new Set(server.paid().map((request) => paidChallengeId(request.authorization))).size,
    ).toBe(maxPaymentRounds)
  })

  test('a challenge id is never paid twice', async () => {
    const same = challengeHeader({ id: 'same' })
    const server = await serve((_, response) =>
      answer402(response, same, { type: 'https://paymentauth.org/problems/invalid-challenge' }),
    )
    const { provider, calls } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.message).toContain('offered nothing new')
    expect(calls.authorized).toEqual(['same'])
  })

  test('410 Gone: the provider recovers and a fresh challenge is paid', async () => {
    const server = await serve(
      refusingFirstPayment((response) =>
        response
          .writeHead(410, {
            'www-authenticate': challengeHeader(),
            'content-type': 'application/problem+json',
          })
          .end(
            JSON.stringify({ type: 'https://paymentauth.org/problems/session/channel-not-found' }),
          ),
      ),
    )
    const { provider, calls } = fakeProvider({ recover: true })
    expect(await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })).toBe(
      '0x1',
    )
    expect(calls.recovered).toEqual(['channelGone'])
    expect(calls.rolledBack).toHaveLength(1)
    expect(calls.committed).toHaveLength(1)
    expect(server.paid()).toHaveLength(2)
  })

  test('410 Gone without a fresh challenge: asks for one unpaid, then pays it', async () => {
    const server = await serve(refusingFirstPayment((response) => response.writeHead(410).end()))
    const { provider, calls } = fakeProvider({ recover: true })
    expect(await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })).toBe(
      '0x1',
    )
    expect(calls.recovered).toEqual(['channelGone'])
    expect(server.requests.map((request) => !!request.authorization)).toEqual([
      false,
      true,
      false,
      true,
    ])
  })

  test('410 Gone without recovery: PaymentFailedError, nothing paid again', async () => {
    const server = await serve(
      paywall({
        paid: (_, response) => {
          response.writeHead(410, { 'content-type': 'application/problem+json' })
          response.end(
            JSON.stringify({ type: 'https://paymentauth.org/problems/session/channel-finalized' }),
          )
        },
      }),
    )
    const { provider, calls } = fakeProvider({ recover: false })
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).status).toBe(410)
    expect(calls.recovered).toEqual(['channelGone'])
    expect(server.paid()).toHaveLength(1)
  })

  test('an unprovisioned key: recovered once, then paid again', async () => {
    const server = await serve(
      refusingFirstPayment((response) =>
        answer402(response, challengeHeader(), {
          type: 'https://paymentauth.org/problems/verification-failed',
          detail: 'access key does not exist',
        }),
      ),
    )
    const { provider, calls } = fakeProvider({ recover: true })
    expect(await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })).toBe(
      '0x1',
    )
    expect(calls.recovered).toEqual(['keyNotProvisioned'])
    expect(server.paid()).toHaveLength(2)
  })

  test('a 5xx: counted as paid, never paid again, not retried by viem', async () => {
    const server = await serve(
      paywall({ paid: (_, response) => response.writeHead(502).end('upstream down') }),
    )
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, { provider, retryCount: 3, retryDelay: 1, budget: 150n })
    const error = await rejectionOf(client.request({ method: 'eth_blockNumber' }))
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).status).toBe(502)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect(calls.committed).toHaveLength(1)
    expect(server.requests).toHaveLength(2)
    // The budget counted it: a second payment of 100 would exceed 150.
    const second = await rejectionOf(client.request({ method: 'eth_blockNumber' }))
    expect((second as PaymentRefusedError).reason).toBe('budget')
  })

  test('a connection reset after the credential left: counted as paid, not retried', async () => {
    const server = await serve(paywall({ paid: (_, response) => response.socket?.destroy() }))
    const { provider, calls } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider, retryCount: 3, retryDelay: 1 }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect(calls.committed).toHaveLength(1)
    expect(server.paid()).toHaveLength(1)
  })

  test('a redirect to another origin: the credential is not sent on', async () => {
    const elsewhere = await serve((request, response) => answerRpc(response, request.body))
    const server = await serve(
      paywall({
        paid: (_, response) =>
          response.writeHead(307, { location: `${elsewhere.url}/steal` }).end(),
      }),
    )
    const { provider } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect(elsewhere.requests).toHaveLength(0)
  })
})

describe('timeouts', () => {
  test("viem's timeout does not cut a payment short", async () => {
    const server = await serve(
      paywall({
        paid: async (request, response) => {
          await new Promise((resolve) => setTimeout(resolve, 300))
          answerRpc(response, request.body)
        },
      }),
    )
    const { provider } = fakeProvider()
    const client = clientFor(server.url, { provider, timeout: 100 })
    expect(await client.request({ method: 'eth_blockNumber' })).toBe('0x1')
    expect(server.paid()).toHaveLength(1)
  })

  test('paymentTimeout ends a payment whose answer never comes; it counts as paid', async () => {
    // Asks for payment, then never answers.
    const server = await serve(paywall({ paid: () => {} }))
    const { provider, calls } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider, paymentTimeout: 200, retryCount: 2 }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect(calls.committed).toHaveLength(1)
    expect(server.paid()).toHaveLength(1)
  })
})

describe('errors', () => {
  test('fallback() does not move past a payment error', async () => {
    const free = await serve((request, response) => answerRpc(response, request.body))
    const paid = await serve(paywall())
    const client = createClient({
      chain,
      transport: fallback([
        mppHttp(paid.url, { maxAmount: 1n, provider: fakeProvider().provider }),
        http(free.url),
      ]),
    })
    const error = await rejectionOf(client.request({ method: 'eth_blockNumber' }))
    expect(free.requests).toHaveLength(0)
    expect(
      (error as PaymentRefusedError).walk((e) => e instanceof PaymentRefusedError),
    ).toBeInstanceOf(PaymentRefusedError)
  })

  test('never show URL secrets or the credential', async () => {
    const server = await serve(paywall({ paid: (_, response) => response.writeHead(500).end() }))
    const { provider } = fakeProvider()
    const error = await rejectionOf(
      clientFor(`${server.url}/v1/secret-key?apikey=secret`, { provider }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    const credential = server.paid()[0]?.authorization
    expect(credential).toBeDefined()
    for (let cause: unknown = error; cause instanceof Error; cause = cause.cause) {
      expect(cause.message).not.toContain('secret')
      expect(cause.message).not.toContain(credential!.slice(8, 40))
    }
  })
})

describe('the header a challenge names for its credential', () => {
  const withHeader = (header: string) =>
    Challenge.serialize(
      Challenge.from({
        id: `header-${header}`,
        realm: 'fake',
        method: 'test',
        intent: 'charge',
        header,
        request: { amount: '100', currency, recipient },
        expires: new Date(Date.now() + 60_000).toISOString(),
      }),
    )

  test.each([
    'Content-Length',
    'Transfer-Encoding',
    'Host',
    'Connection',
    'Cookie',
    'Content-Type',
    'Proxy-Authorization',
  ])('%s: passed over before anything is signed', async (header) => {
    const server = await serve((_request, response) =>
      response.writeHead(402, { 'www-authenticate': withHeader(header) }).end(),
    )
    const { provider, calls } = fakeProvider()
    const error = await rejectionOf(
      retryingClient(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('noSupportedChallenge')
    expect(error.message).toContain(
      `test/charge: its credential would go in the ${header} header, which cannot carry one`,
    )
    expect(calls.prepared).toEqual([])
    expect(server.requests).toHaveLength(1)
  })

  test('an ordinary one carries it', async () => {
    const server = await serve((request, response, raw) => {
      const credential = raw.headers['x-payment']
      if (!credential)
        return response.writeHead(402, { 'www-authenticate': withHeader('X-Payment') }).end()
      expect(paidChallengeId(String(credential))).toBe('header-X-Payment')
      accept(response, request.body)
    })
    const { provider } = fakeProvider()
    expect(
      await retryingClient(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    ).toBe('0x1')
  })
})
