/**
 * Payment credentials over plain http: refused by default except to this machine; sent to the
 * origins named in `dangerouslyPayOverPlainHttp` (a devnet on the user's own network), with a
 * warning once per origin. The "devnet" here is a fake server on 127.0.0.1 reached under a
 * hostname that is not a loopback name, resolved by the test's own lookup.
 */

import { HttpResponse, http as msw } from 'msw'
import { setupServer } from 'msw/node'
import { createClient } from 'viem'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  InvalidPlainHttpOriginError,
  type MppHttpTransportConfig,
  mppHttp,
  PaymentRequiredError,
} from '../../src/index.js'
import { challengeHeader, fakeChain, fakeProvider, receiptHeader } from '../support/fakePayments.js'
import { rpcResult, useFakeServers } from '../support/fakeServer.js'
import { fetchResolving } from '../support/hostnames.js'
import { rejectionOf } from '../support/rejection.js'

const serve = useFakeServers()
const fetchFn = fetchResolving({
  'devnet.viem-mpp.test': '127.0.0.1',
  'other.viem-mpp.test': '127.0.0.1',
})

/** A paid endpoint on 127.0.0.1, and its URL under `hostname`. */
async function devnet(hostname = 'devnet.viem-mpp.test') {
  const server = await serve((request, response) => {
    if (!request.authorization)
      return response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()
    response
      .writeHead(200, { 'content-type': 'application/json', 'payment-receipt': receiptHeader() })
      .end(rpcResult(request.body))
  })
  const { port } = new URL(server.url)
  return { server, url: `http://${hostname}:${port}` }
}

/** The process warnings emitted while `run` runs. */
async function warningsDuring(run: () => Promise<unknown>) {
  const warnings: Error[] = []
  const listen = (warning: Error) => warnings.push(warning)
  process.on('warning', listen)
  try {
    await run()
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.off('warning', listen)
  }
  return warnings.filter((warning) => warning.name === 'ViemMppWarning')
}

describe('plain http off this machine', () => {
  test('refused by default: no credential leaves, and the error says how to opt in', async () => {
    const { server, url } = await devnet()
    const { provider, calls } = fakeProvider()
    const client = createClient({
      chain: fakeChain,
      transport: mppHttp(url, { provider, fetchFn }),
    })
    const error = await rejectionOf(client.request({ method: 'eth_blockNumber' }))
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as PaymentRequiredError).reason).toBe('insecureTransport')
    expect((error as PaymentRequiredError).origin).toBe(new URL(url).origin)
    expect((error as Error).message).toContain('dangerouslyPayOverPlainHttp')
    expect(calls.prepared).toEqual([])
    expect(server.requests).toHaveLength(1)
    expect(server.paid()).toEqual([])
  })

  test('an origin named in dangerouslyPayOverPlainHttp is paid, with one warning per origin; others are not', async () => {
    const { server, url } = await devnet()
    const other = await devnet('other.viem-mpp.test')
    const { provider, calls } = fakeProvider()
    const client = createClient({
      chain: fakeChain,
      transport: mppHttp(url, { provider, fetchFn, dangerouslyPayOverPlainHttp: [url] }),
    })
    const warnings = await warningsDuring(async () => {
      expect(await client.request({ method: 'eth_blockNumber' })).toBe('0x1')
      expect(await client.request({ method: 'eth_chainId' })).toBe('0x1')
    })
    expect(server.paid()).toHaveLength(2)
    expect(calls.committed).toHaveLength(2)
    expect(warnings.map((warning) => warning.message)).toEqual([
      `payment credentials go to ${new URL(url).origin} over plain http (dangerouslyPayOverPlainHttp): anyone on the network path can read them, and a charge's can be settled by whoever does.`,
    ])
    expect((warnings[0] as Error & { code?: string }).code).toBe('VIEM_MPP_PLAIN_HTTP')

    // Another origin on the same network is not named: refused.
    const elsewhere = createClient({
      chain: fakeChain,
      transport: mppHttp(other.url, { provider, fetchFn, dangerouslyPayOverPlainHttp: [url] }),
    })
    const error = await rejectionOf(elsewhere.request({ method: 'eth_blockNumber' }))
    expect((error as PaymentRequiredError).reason).toBe('insecureTransport')
    expect(other.server.paid()).toEqual([])
  })

  test.each([
    ['no scheme', 'devnet.viem-mpp.test:8545'],
    ['https (already allowed)', 'https://devnet.viem-mpp.test'],
    ['a path', 'http://devnet.viem-mpp.test:8545/rpc'],
    ['credentials', 'http://user:hunter2@devnet.viem-mpp.test:8545'],
    ['not a URL', ''],
  ])(
    'an entry with %s throws InvalidPlainHttpOriginError when the transport is made',
    (_, entry) => {
      const make = () =>
        mppHttp('http://devnet.viem-mpp.test', { dangerouslyPayOverPlainHttp: [entry] })
      expect(make).toThrow(InvalidPlainHttpOriginError)
      expect(make).not.toThrow(/hunter2/)
    },
  )
})

const retryingClient = (url: string, config: MppHttpTransportConfig) =>
  createClient({
    chain: fakeChain,
    transport: mppHttp(url, { retryCount: 3, retryDelay: 1, ...config }),
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
        retryingClient(url, { provider }).request({ method: 'eth_blockNumber' }),
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
    expect(await retryingClient(url, { provider }).request({ method: 'eth_blockNumber' })).toBe(
      '0x1',
    )
    expect(calls.committed).toHaveLength(1)
  })
})
