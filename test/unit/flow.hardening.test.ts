/**
 * The payment flow against a hostile server and a careless caller: lies about why a payment was
 * rejected, plain-HTTP endpoints, credential headers that cannot carry one, and deadlines that
 * must hold through garbage collection, hooks and signers that never answer, and caller aborts.
 */
import type { ServerResponse } from 'node:http'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Challenge } from 'mppx'
import { HttpResponse, http as msw } from 'msw'
import { setupServer } from 'msw/node'
import { createClient } from 'viem'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  type MppHttpTransportConfig,
  mppHttp,
  PaymentFailedError,
  PaymentRequiredError,
} from '../../src/index.js'
import {
  challengeHeader,
  currency,
  fakeChain,
  fakeProvider,
  paidChallengeId,
  receiptHeader,
  recipient,
} from '../support/fakePayments.js'
import { rpcResult, useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'

const serve = useFakeServers()

const clientFor = (url: string, config: MppHttpTransportConfig) =>
  createClient({
    chain: fakeChain,
    transport: mppHttp(url, { retryCount: 3, retryDelay: 1, ...config }),
  })

const ok = (response: ServerResponse, body: string) =>
  response
    .writeHead(200, { 'content-type': 'application/json', 'payment-receipt': receiptHeader() })
    .end(rpcResult(body))

/** A 402 with a fresh challenge and problem details of `type`. */
function rejectWith(response: ServerResponse, type: string, challenge = challengeHeader()) {
  response
    .writeHead(402, { 'www-authenticate': challenge, 'content-type': 'application/problem+json' })
    .end(JSON.stringify({ type: `https://paymentauth.org/problems/${type}` }))
}

/** Resolves once the server has received `count` paid requests. */
function paidRequests(count: number) {
  let seen = 0
  let reached: () => void = () => {}
  const done = new Promise<void>((resolve) => {
    reached = resolve
  })
  return {
    done,
    record() {
      if (++seen === count) reached()
    },
  }
}

describe('a server that lies about why it rejected a bearer payment', () => {
  test('"expired" while the challenge had a minute to run: paid once, PaymentFailedError', async () => {
    const server = await serve((request, response) => {
      // Every answer, paid or not, offers a fresh challenge that expires in a minute.
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      rejectWith(response, 'payment-expired')
    })
    const { provider, calls } = fakeProvider({ bearer: true })
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect((error as PaymentFailedError).shortMessage).toBe(
      'The server said the challenge had expired, but it had not; the payment is not made again.',
    )
    expect(calls.authorized).toHaveLength(1)
    expect(server.paid()).toHaveLength(1)
  })

  test('"expired" when it really had by the client\'s clock: paid again, once', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response
          .writeHead(402, {
            // Expires within the clock-skew allowance: the server may well see it expired.
            'www-authenticate': challengeHeader({ expires: new Date(Date.now() + 1_000) }),
          })
          .end()
      if (server.paid().length === 1) return rejectWith(response, 'payment-expired')
      ok(response, request.body)
    })
    const { provider, calls } = fakeProvider({ bearer: true })
    const client = clientFor(server.url, { provider, budget: 200n })
    expect(await client.request({ method: 'eth_blockNumber' })).toBe('0x1')
    expect(calls.authorized).toHaveLength(2)
    expect(server.paid()).toHaveLength(2)
    // The first transfer may still be broadcast by the server: both stay counted.
    expect(await rejectionOf(client.request({ method: 'eth_chainId' })).then((e) => e.name)).toBe(
      'PaymentRefusedError',
    )
  })

  test('"key not provisioned", and the provider finds the key on chain: paid once', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      rejectWith(response, 'key-not-provisioned')
    })
    // `recover` is where a provider checks the claim; this one's check says it is false.
    const { provider, calls } = fakeProvider({ bearer: true, recover: false })
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect(calls.recovered).toEqual(['keyNotProvisioned'])
    expect(server.paid()).toHaveLength(1)
  })

  test('"key not provisioned", and the provider confirms it: paid again, once', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      if (server.paid().length === 1) return rejectWith(response, 'key-not-provisioned')
      ok(response, request.body)
    })
    const { provider, calls } = fakeProvider({ bearer: true, recover: true })
    expect(await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })).toBe(
      '0x1',
    )
    expect(calls.recovered).toEqual(['keyNotProvisioned'])
    expect(server.paid()).toHaveLength(2)
  })

  test('"key not provisioned" again after the authorization was attached: not paid a third time', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
      rejectWith(response, 'key-not-provisioned')
    })
    // A provider whose check always says the key is missing: the flow retries once, not twice.
    const { provider, calls } = fakeProvider({ bearer: true, recover: true })
    const error = await rejectionOf(
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).shortMessage).toBe(
      'The server said twice that the access key is not provisioned.',
    )
    expect((error as PaymentFailedError).status).toBe(402)
    expect(calls.recovered).toEqual(['keyNotProvisioned'])
    expect(server.paid()).toHaveLength(2)
  })

  test.each(['verification-failed', 'invalid-challenge'])(
    '"%s": paid once, PaymentFailedError',
    async (type) => {
      const server = await serve((request, response) => {
        if (!request.authorization)
          return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
        rejectWith(response, type)
      })
      const { provider } = fakeProvider({ bearer: true, recover: true })
      const error = await rejectionOf(
        clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
      )
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect((error as PaymentFailedError).settled).toBe(true)
      expect(server.paid()).toHaveLength(1)
    },
  )
})

describe('plain http://', () => {
  const mock = setupServer(
    msw.post(/^https?:\/\/[^/]+\/rpc$/, async ({ request }) => {
      if (!request.headers.get('authorization'))
        return new HttpResponse(null, {
          status: 402,
          headers: { 'www-authenticate': challengeHeader() },
        })
      return HttpResponse.text(rpcResult(await request.text()), {
        headers: { 'content-type': 'application/json' },
      })
    }),
  )
  beforeAll(() => mock.listen({ onUnhandledRequest: 'error' }))
  afterAll(() => mock.close())

  test.each(['http://rpc.example.test/rpc', 'http://10.0.0.7/rpc', 'http://127.example.test/rpc'])(
    '%s: PaymentRequiredError, nothing prepared or sent',
    async (url) => {
      const { provider, calls } = fakeProvider()
      const error = await rejectionOf(
        clientFor(url, { provider }).request({ method: 'eth_blockNumber' }),
      )
      expect(error).toBeInstanceOf(PaymentRequiredError)
      expect((error as PaymentRequiredError).reason).toBe('insecureTransport')
      expect((error as PaymentRequiredError).shortMessage).toContain('only over https://')
      expect(calls.prepared).toEqual([])
    },
  )

  test.each([
    'https://rpc.example.test/rpc',
    'http://localhost:8545/rpc',
    'http://127.0.0.1:8545/rpc',
    'http://[::1]:8545/rpc',
  ])('%s: paid', async (url) => {
    const { provider, calls } = fakeProvider()
    expect(await clientFor(url, { provider }).request({ method: 'eth_blockNumber' })).toBe('0x1')
    expect(calls.committed).toHaveLength(1)
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
      clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' }),
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
      ok(response, request.body)
    })
    const { provider } = fakeProvider()
    expect(await clientFor(server.url, { provider }).request({ method: 'eth_blockNumber' })).toBe(
      '0x1',
    )
  })
})

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
      clientFor(server.url, { provider, paymentTimeout: 300 }).request({
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
      ok(response, request.body)
    })
    let asked = 0
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, {
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
      ok(response, request.body)
    })
    const { provider: base } = fakeProvider()
    let rolledBack = 0
    const error = await rejectionOf(
      clientFor(server.url, {
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
      ok(response, request.body)
    })
    const controller = new AbortController()
    const { provider } = fakeProvider()
    const error = await rejectionOf(
      clientFor(server.url, {
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
      clientFor(server.url, { provider }).request(
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
      clientFor(server.url, { provider, paymentTimeout: 300 }).request({
        method: 'eth_blockNumber',
      }),
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect(server.paid()).toHaveLength(1)
  })
})
