/**
 * Failures inside the payment flow itself: providers that throw, bearer credentials under a
 * budget, callers that give up, hooks that reject, and what the paid request carries.
 */
import type { ServerResponse } from 'node:http'
import { type BaseError, createClient, fallback } from 'viem'
import { describe, expect, test } from 'vitest'
import {
  type MppHttpTransportConfig,
  mppHttp,
  PaymentFailedError,
  PaymentRefusedError,
  PaymentRequiredError,
} from '../../src/index.js'
import { challengeHeader, fakeChain, fakeProvider, receiptHeader } from '../support/fakePayments.js'
import { type FakeHandler, rpcResult, useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'

const chain = fakeChain
const serve = useFakeServers()

const ok = (response: ServerResponse, body: string) =>
  response
    .writeHead(200, { 'content-type': 'application/json', 'payment-receipt': receiptHeader() })
    .end(rpcResult(body))

function problem402(response: ServerResponse, type: string) {
  response.writeHead(402, {
    'www-authenticate': challengeHeader(),
    'content-type': 'application/problem+json',
  })
  response.end(JSON.stringify({ type: `https://paymentauth.org/problems/${type}` }))
}

const paywall: FakeHandler = (request, response) => {
  if (!request.authorization)
    return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
  ok(response, request.body)
}

const clientFor = (url: string, config: MppHttpTransportConfig) =>
  createClient({ chain, transport: mppHttp(url, { retryCount: 3, retryDelay: 1, ...config }) })

describe('a provider that throws', () => {
  test('in commit, after the server accepted: the answer is still returned, paid once', async () => {
    const server = await serve(paywall)
    const { provider, calls } = fakeProvider({ failIn: 'commit' })
    expect(await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })).toBe(
      '0x1',
    )
    expect(calls.committed).toHaveLength(1)
    expect(server.paid()).toHaveLength(1)
  })

  test('in authorize: PaymentFailedError, nothing sent, not retried', async () => {
    const server = await serve(paywall)
    const { provider, calls } = fakeProvider({ failIn: 'authorize' })
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(false)
    expect(calls.rolledBack).toHaveLength(1)
    expect(server.requests).toHaveLength(1)
    // The provider's own error is kept as the cause, without its URL's secrets.
    expect((error.cause as Error).message).toBe('authorize failed at https://provider.test')
  })

  test.each(['rollback', 'recover'] as const)(
    'in %s, after a rejection: PaymentFailedError, paid once, not retried',
    async (failIn) => {
      const server = await serve((request, response) => {
        if (!request.authorization)
          return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
        problem402(response, 'session/stale-voucher')
      })
      const { provider } = fakeProvider({ failIn, recover: true })
      const error = await rejectionOf(
        clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
      )
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(server.paid()).toHaveLength(1)
      expect(server.requests).toHaveLength(2)
    },
  )

  test('whose select picks a challenge it may not pay: nothing is paid', async () => {
    const server = await serve(paywall)
    const foreign = {
      id: 'foreign',
      realm: 'r',
      method: 'test',
      intent: 'charge',
      request: { amount: '1' },
    }
    const { provider, calls } = fakeProvider({ select: () => foreign })
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect(calls.prepared).toEqual([])
  })
})

describe('bearer credentials', () => {
  // Challenges that expire within the client's clock-skew allowance: a server that calls them
  // expired is believed, so that a bearer payment may be made again.
  const expiring = () => challengeHeader({ expires: new Date(Date.now() + 1_000) })

  test('a rejected one stays counted against the budget', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': expiring() }).end()
      problem402(response, 'payment-expired')
    })
    const { provider, calls } = fakeProvider({ bearer: true })
    const error = await rejectionOf(
      clientFor(server.url, { provider, budget: 150n }).request({ method: 'eth_blockNumber' }),
    )
    // The first (100) may still be settled by the server, so a second would exceed 150.
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect((error as PaymentRefusedError).reason).toBe('budget')
    expect(calls.authorized).toHaveLength(1)
    expect(server.paid()).toHaveLength(1)
  })

  test('one rejected earlier is still reported as possibly taken when a later round fails', async () => {
    const same = challengeHeader({ id: 'same-bearer', expires: new Date(Date.now() + 1_000) })
    const server = await serve((request, response) => {
      response.writeHead(402, {
        'www-authenticate': same,
        'content-type': 'application/problem+json',
      })
      response.end(
        request.authorization
          ? JSON.stringify({ type: 'https://paymentauth.org/problems/payment-expired' })
          : undefined,
      )
    })
    const error = await rejectionOf(
      clientFor(server.url, { provider: fakeProvider({ bearer: true }).provider }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error.message).toContain('offered nothing new')
    expect((error as PaymentFailedError).settled).toBe(true)
  })

  test('a rejected one is reported as possibly taken', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      problem402(response, 'verification-failed')
    })
    const error = await rejectionOf(
      clientFor(server.url, { provider: fakeProvider({ bearer: true }).provider }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect((error as PaymentFailedError).settled).toBe(true)
  })
})

describe('the caller', () => {
  test('who gives up before the credential is sent pays nothing', async () => {
    const server = await serve(paywall)
    const controller = new AbortController()
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, {
      provider,
      onPaymentRequired: async () => {
        controller.abort()
      },
    })
    await rejectionOf(client.request({ method: 'eth_blockNumber' }, { signal: controller.signal }))
    expect(server.paid()).toHaveLength(0)
    expect(calls.authorized).toEqual([])
    expect(calls.rolledBack).toHaveLength(1)
  })

  test('whose hooks reject asynchronously still gets the answer', async () => {
    const server = await serve(paywall)
    const client = clientFor(server.url, {
      provider: fakeProvider().provider,
      onChallenge: async () => {
        throw new Error('hook')
      },
      onPaymentSent: async () => {
        throw new Error('hook')
      },
      onReceipt: async () => {
        throw new Error('hook')
      },
    })
    expect(await client.request({ method: 'eth_blockNumber' })).toBe('0x1')
  })

  test('keeps its fetch options on the paid request', async () => {
    const server = await serve(paywall)
    const seen: RequestInit[] = []
    const client = clientFor(server.url, {
      provider: fakeProvider().provider,
      fetchOptions: { cache: 'no-store', keepalive: true, headers: { 'x-api-key': 'k' } },
      fetchFn: (input, init) => {
        seen.push(init ?? {})
        return fetch(input, init)
      },
    })
    await client.request({ method: 'eth_blockNumber' })
    expect(seen).toHaveLength(2)
    for (const init of seen) {
      expect(init.cache).toBe('no-store')
      expect(init.keepalive).toBe(true)
      expect(new Headers(init.headers).get('x-api-key')).toBe('k')
    }
  })
})

describe('around the transport', () => {
  test('inside fallback(), a paid call that fails is paid once, at one endpoint', async () => {
    const failing: FakeHandler = (request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      const { id } = JSON.parse(request.body) as { id: number }
      response
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32603, message: 'upstream' } }))
    }
    const [a, b] = [await serve(failing), await serve(failing)]
    const { provider, calls } = fakeProvider()
    const client = createClient({
      chain,
      transport: fallback([mppHttp(a.url, { provider }), mppHttp(b.url, { provider })], {
        retryCount: 3,
        retryDelay: 1,
      }),
    })
    const error = await rejectionOf(client.request({ method: 'eth_blockNumber' }))
    expect((error as BaseError).walk((e) => e instanceof PaymentFailedError)).toBeInstanceOf(
      PaymentFailedError,
    )
    expect(calls.authorized).toHaveLength(1)
    expect(a.paid().length + b.paid().length).toBe(1)
  })

  test('a 402 reached through a redirect to another origin is not paid', async () => {
    const elsewhere = await serve(paywall)
    const server = await serve((_, response) =>
      response.writeHead(307, { location: `${elsewhere.url}/` }).end(),
    )
    const { provider, calls } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('redirected')
    expect(calls.prepared).toEqual([])
    expect(elsewhere.paid()).toHaveLength(0)
  })

  test('inside fallback(), a batch still costs one payment', async () => {
    const server = await serve(paywall)
    const { provider, calls } = fakeProvider()
    const client = createClient({
      chain,
      transport: fallback([mppHttp(server.url, { provider, batch: true })]),
    })
    await Promise.all([
      client.request({ method: 'eth_blockNumber' }),
      client.request({ method: 'eth_chainId' }),
      client.request({ method: 'eth_gasPrice' }),
    ])
    expect(calls.authorized).toHaveLength(1)
    expect(server.requests).toHaveLength(2)
  })

  test('a call that fails while an identical call was paid counts as paid: not retried', async () => {
    let arrivals = 0
    let releaseSecond: () => void = () => {}
    const firstPaid = new Promise<void>((resolve) => {
      releaseSecond = resolve
    })
    const server = await serve(async (request, response) => {
      if (request.authorization) {
        ok(response, request.body)
        return releaseSecond()
      }
      arrivals++
      if (arrivals === 1)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      if (arrivals === 2) {
        // The second call fails only once the first has been paid for.
        await firstPaid
        return response.writeHead(503).end()
      }
      ok(response, request.body)
    })
    const client = clientFor(server.url, { provider: fakeProvider().provider })
    const results = await Promise.allSettled([
      client.request({ method: 'eth_blockNumber' }),
      client.request({ method: 'eth_blockNumber' }),
    ])
    // The calls cannot be told apart, so the failed one may have been the paid one: a retry
    // could pay twice, so there is none (the safe side of the trade).
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected'])
    expect(server.paid()).toHaveLength(1)
    expect(server.requests).toHaveLength(3)
  })

  test('a 303 redirect of the paid request is not followed', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      if (request.url === '/') return response.writeHead(303, { location: '/elsewhere' }).end()
      ok(response, request.body)
    })
    const error = await rejectionOf(
      clientFor(server.url, { provider: fakeProvider().provider }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect(server.requests.map((request) => request.url)).toEqual(['/', '/'])
  })

  test('an oversized problem body is not buffered', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      response.writeHead(402, { 'content-type': 'application/problem+json' })
      response.end(
        `{"type":"https://paymentauth.org/problems/x","detail":"${'a'.repeat(200_000)}"}`,
      )
    })
    const error = await rejectionOf(
      clientFor(server.url, { provider: fakeProvider().provider }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).problem).toBeUndefined()
  })
})
