/**
 * Paying before the server asks (`PaymentProvider.challengeFor`): once a provider that can has
 * paid, each request carries its payment on the way out, so a paid call takes one HTTP request;
 * every 402 or 410 answer falls back to the usual flow, under the same policy and errors.
 */

import type { ServerResponse } from 'node:http'
import { Challenge } from 'mppx'
import {
  type BaseError,
  type Client,
  createClient,
  fallback,
  HttpRequestError,
  http,
  InternalRpcError,
  numberToHex,
} from 'viem'
import { afterEach, describe, expect, test, vi } from 'vitest'
import {
  type MppHttpTransportConfig,
  mppHttp,
  PaymentFailedError,
  type PaymentProvider,
  PaymentRefusedError,
  PaymentRequiredError,
} from '../../src/index.js'
import {
  challengeHeader,
  fakeChain,
  fakeProvider,
  paidChallengeId,
  receiptHeader,
} from '../support/fakePayments.js'
import { rpcResult, useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'

const chain = fakeChain
const serve = useFakeServers()

afterEach(() => {
  vi.useRealTimers()
})

const answerJson = (response: ServerResponse, body: string) =>
  response
    .writeHead(200, { 'content-type': 'application/json', 'payment-receipt': receiptHeader() })
    .end(body)

const problemType = (name: string) => `https://paymentauth.org/problems/${name}`

/** What a paid request's answer is instead of an acceptance: its status, problem, challenge. */
type Refusal = { status?: number; problem?: string; challenge?: 'fresh' | 'none' | string }

/**
 * A server that answers like mppx's: an unpaid request gets `402` with a fresh challenge (`c1`,
 * `c2`, …, valid for a minute); a credential for any unexpired challenge it issued is accepted,
 * again and again (there is no replay store); one for an expired or unknown challenge gets `402`
 * `payment-expired` with a fresh challenge. `refuseNext` scripts the answers to the next paid
 * requests.
 */
async function mppServer() {
  const expiries = new Map<string, number>()
  const refusals: Refusal[] = []
  const issue = () => {
    const id = `c${expiries.size + 1}`
    const expires = new Date(Date.now() + 60_000)
    expiries.set(id, expires.getTime())
    return challengeHeader({ id, expires })
  }
  const refuse = (response: ServerResponse, { status = 402, problem, challenge }: Refusal) => {
    const headers: Record<string, string> = {}
    if (challenge !== 'none')
      headers['www-authenticate'] =
        challenge === undefined || challenge === 'fresh' ? issue() : challenge
    if (problem) headers['content-type'] = 'application/problem+json'
    response
      .writeHead(status, headers)
      .end(problem ? JSON.stringify({ type: problemType(problem), status }) : undefined)
  }
  const server = await serve((request, response) => {
    const id = paidChallengeId(request.authorization)
    if (id === undefined) return refuse(response, {})
    const refusal = refusals.shift()
    if (refusal) return refuse(response, refusal)
    if (!((expiries.get(id) ?? 0) > Date.now()))
      return refuse(response, { problem: 'payment-expired' })
    answerJson(response, rpcResult(request.body))
  })
  return {
    ...server,
    /** Scripts the answers to the next paid requests, in order. */
    refuseNext: (...next: Refusal[]) => refusals.push(...next),
    /** The challenge id each request paid (undefined: unpaid). */
    paidIds: () => server.requests.map((request) => paidChallengeId(request.authorization)),
  }
}

const clientFor = (url: string, config: MppHttpTransportConfig = {}) =>
  createClient({ chain, transport: mppHttp(url, config) })

/** `eth_getBalance` of the address numbered `id`: distinct calls, for distinct requests. */
const call = (client: Client, id = 0) =>
  client.request({
    method: 'eth_getBalance',
    params: [numberToHex(id, { size: 20 }), 'latest'],
  })

/**
 * A provider that pays once through a 402, then answers `challengeFor` with `challengeFor`;
 * `asked` counts its calls.
 */
async function presenting(
  server: Awaited<ReturnType<typeof mppServer>>,
  challengeFor: () => Challenge.Challenge,
  config: MppHttpTransportConfig = {},
) {
  const fake = fakeProvider({ reuse: true })
  const client = clientFor(server.url, { provider: fake.provider, ...config })
  await call(client)
  let asked = 0
  fake.provider.challengeFor = () => {
    asked++
    return challengeFor()
  }
  return { ...fake, client, asked: () => asked }
}

describe('one HTTP request per paid call', () => {
  test('after the first 402, N sequential calls take N + 1 HTTP requests and N payments', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider })
    for (let i = 0; i < 5; i++) expect(await call(client, i)).toBe('0x1')
    expect(server.requests).toHaveLength(6)
    // The same challenge, paid by each later request.
    expect(server.paidIds()).toEqual([undefined, 'c1', 'c1', 'c1', 'c1', 'c1'])
    expect(calls.authorized).toEqual(['c1', 'c1', 'c1', 'c1', 'c1'])
    expect(calls.committed).toEqual(['c1', 'c1', 'c1', 'c1', 'c1'])
    expect(calls.rolledBack).toEqual([])
    // Not asked before it had paid.
    expect(calls.presented).toEqual(['c1', 'c1', 'c1', 'c1'])
  })

  test('a batch of calls pre-sent is one HTTP request and one payment', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider, batch: true })
    await call(client)
    const results = await Promise.all([1, 2, 3, 4, 5].map((id) => call(client, id)))
    expect(results).toEqual(['0x1', '0x1', '0x1', '0x1', '0x1'])
    expect(server.paidIds()).toEqual([undefined, 'c1', 'c1'])
    expect(JSON.parse(server.requests[2]?.body ?? '')).toHaveLength(5)
    expect(calls.authorized).toEqual(['c1', 'c1'])
  })

  test('20 concurrent pre-sent calls each pay once', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider })
    await call(client)
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => call(client, i + 1)))
    expect(results).toEqual(Array(20).fill('0x1'))
    expect(server.requests).toHaveLength(22)
    expect(server.paid()).toHaveLength(21)
    expect(calls.authorized).toHaveLength(21)
    expect(calls.committed).toHaveLength(21)
    expect(calls.rolledBack).toEqual([])
    // Each call in exactly one paid request.
    const bodies = server.paid().map((request) => JSON.parse(request.body).params[0])
    expect(new Set(bodies).size).toBe(21)
  })

  test('a provider without challengeFor is never asked: the calls take two requests each', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, { provider })
    await call(client, 1)
    await call(client, 2)
    expect(server.paidIds()).toEqual([undefined, 'c1', undefined, 'c2'])
    expect(calls.authorized).toEqual(['c1', 'c2'])
  })

  test('net_listening pings are never pre-sent', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    const transport = mppHttp(server.url, { provider })({ chain, retryCount: 0 })
    await transport.request({ method: 'eth_blockNumber' })
    expect(await transport.request({ method: 'net_listening' })).toBe(true)
    expect(server.paidIds()).toEqual([undefined, 'c1', undefined])
    expect(calls.authorized).toEqual(['c1'])
  })
})

describe('a challenge that cannot be pre-sent: the request goes out unpaid', () => {
  test("the reused challenge within 5 s of its expiry: the fresh 402's challenge is paid", async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider })
    await call(client, 1)
    await call(client, 2)
    // c1 now expires in 4 s: the provider no longer offers it.
    vi.setSystemTime(Date.now() + 56_000)
    await call(client, 3)
    await call(client, 4)
    expect(server.paidIds()).toEqual([undefined, 'c1', 'c1', undefined, 'c2', 'c2'])
    expect(calls.presented).toEqual(['c1', undefined, 'c2'])
    expect(calls.authorized).toEqual(['c1', 'c1', 'c2', 'c2'])
    expect(calls.rolledBack).toEqual([])
  })

  const unpayable = {
    expired: { expires: new Date(Date.now() - 1_000) },
    'for another chain': { chainId: 1 },
    'of a method the provider does not support': { method: 'other' },
  }
  test.each(Object.entries(unpayable))(
    'a challenge %s is passed over by the flow itself',
    async (_, options) => {
      const server = await mppServer()
      const bad = Challenge.deserialize(challengeHeader({ id: 'bad', ...options }))
      const { calls, client, asked } = await presenting(server, () => bad)
      expect(await call(client, 1)).toBe('0x1')
      expect(asked()).toBe(1)
      expect(server.paidIds()).toEqual([undefined, 'c1', undefined, 'c2'])
      expect(calls.prepared).toEqual(['c1', 'c2'])
    },
  )

  test('a challenge whose credential would go in a forbidden header is passed over', async () => {
    const server = await mppServer()
    const issued = Challenge.deserialize(challengeHeader({ id: 'c1' }))
    const { calls, client, asked } = await presenting(server, () => ({
      ...issued,
      header: 'Cookie',
    }))
    await call(client, 1)
    expect(asked()).toBe(1)
    expect(server.paidIds()).toEqual([undefined, 'c1', undefined, 'c2'])
    expect(calls.prepared).toEqual(['c1', 'c2'])
  })

  test('challengeFor throwing counts as no challenge', async () => {
    const server = await mppServer()
    const { calls, client, asked } = await presenting(server, () => {
      throw new Error('no challenge at https://provider.test/secret-path')
    })
    expect(await call(client, 2)).toBe('0x1')
    expect(asked()).toBe(1)
    expect(server.paidIds()).toEqual([undefined, 'c1', undefined, 'c2'])
    expect(calls.authorized).toEqual(['c1', 'c2'])
  })
})

describe('a pre-sent payment the server rejects', () => {
  test.each([
    { case: 'a plain 402', refusal: {} },
    { case: '402 payment-expired', refusal: { problem: 'payment-expired' } },
    { case: '402 invalid-challenge', refusal: { problem: 'invalid-challenge' } },
  ])('$case with a fresh challenge: rolled back, the fresh one paid', async ({ refusal }) => {
    const server = await mppServer()
    const rejected: number[] = []
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, {
      provider,
      onPaymentRejected: ({ status }) => rejected.push(status),
    })
    await call(client, 1)
    server.refuseNext(refusal)
    expect(await call(client, 2)).toBe('0x1')
    expect(server.paidIds()).toEqual([undefined, 'c1', 'c1', 'c2'])
    // The second call: two payments, one rolled back, one committed.
    expect(calls.authorized).toEqual(['c1', 'c1', 'c2'])
    expect(calls.rolledBack).toEqual(['c1'])
    expect(calls.committed).toEqual(['c1', 'c2'])
    expect(rejected).toEqual([402])
    // The next call pre-sends the challenge the server last accepted.
    await call(client, 3)
    expect(server.paidIds().at(-1)).toBe('c2')
  })

  test('a plain 402 to a pre-sent bearer payment is not paid again', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true, bearer: true })
    const client = clientFor(server.url, { provider })
    await call(client, 1)
    server.refuseNext({})
    const error = (await rejectionOf(call(client, 2))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.shortMessage).toBe('The server rejected the payment.')
    expect(error.settled).toBe(true)
    expect(calls.authorized).toEqual(['c1', 'c1'])
    expect(server.requests).toHaveLength(3)
  })

  test.each([
    { case: 'with a fresh challenge', challenge: 'fresh' as const, requests: 4 },
    { case: 'without one: one is asked for', challenge: 'none' as const, requests: 5 },
  ])('410 $case: recovered, and the fresh challenge paid', async ({ challenge, requests }) => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true, recover: true })
    const client = clientFor(server.url, { provider })
    await call(client, 1)
    server.refuseNext({ status: 410, problem: 'session/channel-not-found', challenge })
    expect(await call(client, 2)).toBe('0x1')
    expect(calls.recovered).toEqual(['channelGone'])
    expect(calls.authorized).toEqual(['c1', 'c1', 'c2'])
    expect(calls.rolledBack).toEqual(['c1'])
    expect(calls.committed).toEqual(['c1', 'c2'])
    expect(server.requests).toHaveLength(requests)
    expect(server.paidIds().at(-1)).toBe('c2')
  })

  test('410 that the provider cannot recover from fails the call, typed', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true, recover: false })
    const client = clientFor(server.url, { provider })
    await call(client, 1)
    server.refuseNext({ status: 410, problem: 'session/channel-not-found' })
    const error = (await rejectionOf(call(client, 2))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.status).toBe(410)
    expect(error.settled).toBe(false)
    expect(calls.rolledBack).toEqual(['c1'])
    expect(server.requests).toHaveLength(3)
  })

  test('the same challenge is never paid twice within one request', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider })
    await call(client, 1)
    server.refuseNext({ challenge: challengeHeader({ id: 'c1' }) })
    const error = (await rejectionOf(call(client, 2))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.shortMessage).toBe(
      'The server rejected the payment and offered nothing new to pay.',
    )
    expect(calls.authorized).toEqual(['c1', 'c1'])
    expect(server.requests).toHaveLength(3)
  })

  test('the pre-sent payment is the first of three rounds at most', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider })
    await call(client, 1)
    const expired = { problem: 'payment-expired' }
    server.refuseNext(expired, expired, expired, expired)
    const error = (await rejectionOf(call(client, 2))) as PaymentFailedError
    expect(error.shortMessage).toBe('The server rejected 3 payments for one request.')
    expect(calls.authorized).toEqual(['c1', 'c1', 'c2', 'c3'])
    expect(calls.rolledBack).toEqual(['c1', 'c2', 'c3'])
    expect(server.requests).toHaveLength(5)
  })
})

describe('the spending policy holds for pre-sent payments', () => {
  test('budget: the payment is refused and nothing is sent', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider, budget: 150n })
    await call(client, 1)
    const error = (await rejectionOf(call(client, 2))) as PaymentRefusedError
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect(error.reason).toBe('budget')
    expect(server.requests).toHaveLength(2)
    expect(calls.prepared).toEqual(['c1', 'c1'])
    expect(calls.authorized).toEqual(['c1'])
    expect(calls.rolledBack).toEqual(['c1'])
  })

  test('maxAmount: the payment is refused and nothing is sent', async () => {
    const server = await mppServer()
    const dear = Challenge.deserialize(challengeHeader({ id: 'dear', amount: '1000' }))
    const { calls, client } = await presenting(server, () => dear, { maxAmount: 500n })
    const error = (await rejectionOf(call(client, 2))) as PaymentRefusedError
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect(error.reason).toBe('maxAmount')
    expect(server.requests).toHaveLength(2)
    expect(calls.authorized).toEqual(['c1'])
    expect(calls.rolledBack).toEqual(['dear'])
  })

  test('onPaymentRequired is asked, and its refusal sends nothing', async () => {
    const server = await mppServer()
    const asked: string[] = []
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, {
      provider,
      onPaymentRequired: ({ challenge }) => {
        asked.push(challenge.id)
        return asked.length < 3
      },
    })
    await call(client, 1)
    await call(client, 2)
    const error = (await rejectionOf(call(client, 3))) as PaymentRefusedError
    expect(error).toBeInstanceOf(PaymentRefusedError)
    expect(error.reason).toBe('onPaymentRequired')
    expect(asked).toEqual(['c1', 'c1', 'c1'])
    expect(server.paidIds()).toEqual([undefined, 'c1', 'c1'])
    expect(calls.authorized).toEqual(['c1', 'c1'])
  })

  test('paymentTimeout bounds a pre-sent payment: a signer that never answers sends nothing', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    let hang = false
    const hanging: PaymentProvider = {
      ...provider,
      async prepare(parameters) {
        const prepared = await provider.prepare(parameters)
        return hang ? { ...prepared, authorize: () => new Promise<string>(() => {}) } : prepared
      },
    }
    const client = clientFor(server.url, { provider: hanging, paymentTimeout: 100 })
    await call(client, 1)
    hang = true
    const error = (await rejectionOf(call(client, 2))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.settled).toBe(false)
    expect(error.shortMessage).toBe(
      'The payment was not completed in time or the caller gave up; nothing was sent.',
    )
    expect(server.requests).toHaveLength(2)
    expect(calls.rolledBack).toEqual(['c1'])
  })
})

describe("the caller's signal and viem's timeout", () => {
  /** 402 unless paid; the first paid request answered, the next ones as `later` says. */
  const servePaidThen = (later: (response: ServerResponse, body: string) => unknown) => {
    let paid = 0
    return serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader({ id: 'c1' }) }).end()
      if (paid++ === 0) return answerJson(response, rpcResult(request.body))
      return later(response, request.body)
    })
  }

  test("viem's timeout does not cut a pre-sent payment short", async () => {
    const server = await servePaidThen(async (response, body) => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      answerJson(response, rpcResult(body))
    })
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider, timeout: 100 })
    await call(client, 1)
    expect(await call(client, 2)).toBe('0x1')
    expect(calls.authorized).toEqual(['c1', 'c1'])
    expect(server.requests).toHaveLength(3)
  })

  test('a caller who gives up while the answer arrives: PaymentFailedError, settled', async () => {
    let arrived!: () => void
    const arriving = new Promise<void>((resolve) => {
      arrived = resolve
    })
    const server = await servePaidThen((response) => {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.write('{"jsonrpc":"2.0",')
      arrived()
    })
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider, retryCount: 3 })
    await call(client, 1)
    const caller = new AbortController()
    const pending = rejectionOf(
      client.request(
        { method: 'eth_getBalance', params: [`0x${'0'.repeat(40)}`, 'latest'] },
        { signal: caller.signal },
      ),
    )
    await arriving
    caller.abort()
    const error = (await pending) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.settled).toBe(true)
    expect((error.cause as Error).name).toBe('AbortError')
    expect(calls.committed).toEqual(['c1', 'c1'])
    expect(server.requests).toHaveLength(3)
  })
})

describe("viem's retries and fallback(): a pre-sent paid request counts as paid", () => {
  test('a 500 to it is final: not retried, settled', async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider, retryCount: 3, retryDelay: 1 })
    await call(client, 1)
    server.refuseNext({ status: 500, challenge: 'none' })
    const error = (await rejectionOf(call(client, 2))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.settled).toBe(true)
    expect(error.status).toBe(500)
    expect(server.requests).toHaveLength(3)
    expect(calls.authorized).toEqual(['c1', 'c1'])
    expect(calls.committed).toEqual(['c1', 'c1'])
  })

  test('a JSON-RPC error in its answer reaches the caller typed, not retried', async () => {
    let failing = false
    const server = await serve((request, response) => {
      if (!request.authorization)
        return response.writeHead(402, { 'www-authenticate': challengeHeader({ id: 'c1' }) }).end()
      const { id } = JSON.parse(request.body) as { id: number }
      answerJson(
        response,
        failing
          ? JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32603, message: 'upstream' } })
          : rpcResult(request.body),
      )
    })
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = clientFor(server.url, { provider, retryCount: 3, retryDelay: 1 })
    await call(client, 1)
    failing = true
    const error = await rejectionOf(call(client, 2))
    expect(error).toBeInstanceOf(InternalRpcError)
    expect(server.requests).toHaveLength(3)
    expect(calls.authorized).toEqual(['c1', 'c1'])
  })

  test('inside fallback(), the next transport is not asked', async () => {
    const server = await mppServer()
    const next = await serve((request, response) => answerJson(response, rpcResult(request.body)))
    const { provider, calls } = fakeProvider({ reuse: true })
    const client = createClient({
      chain,
      transport: fallback([mppHttp(server.url, { provider }), http(next.url)], {
        retryCount: 3,
        retryDelay: 1,
      }),
    })
    await call(client, 1)
    server.refuseNext({ status: 503, challenge: 'none' })
    const error = (await rejectionOf(call(client, 2))) as BaseError
    const paid = error.walk((e) => e instanceof PaymentFailedError) as PaymentFailedError
    expect(paid.settled).toBe(true)
    expect(error.walk((e) => e instanceof HttpRequestError)).toBeNull()
    expect(next.requests).toHaveLength(0)
    expect(server.requests).toHaveLength(3)
    expect(calls.authorized).toEqual(['c1', 'c1'])
  })
})

describe('unsupportedReason', () => {
  test("a passed-over challenge shows the provider's reason", async () => {
    const server = await mppServer()
    const { provider, calls } = fakeProvider({ method: 'other' })
    const client = clientFor(server.url, {
      provider: {
        ...provider,
        unsupportedReason: (challenge) =>
          challenge.intent === 'charge' ? 'session protocol v1, not v2' : undefined,
      },
    })
    const error = (await rejectionOf(call(client, 1))) as PaymentRequiredError
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect(error.reason).toBe('noSupportedChallenge')
    expect(error.metaMessages).toContain('  test/charge: session protocol v1, not v2')
    expect(calls.prepared).toEqual([])
  })

  test('undefined from it keeps the default reason', async () => {
    const server = await mppServer()
    const { provider } = fakeProvider({ method: 'other' })
    const client = clientFor(server.url, {
      provider: { ...provider, unsupportedReason: () => undefined },
    })
    const error = (await rejectionOf(call(client, 1))) as PaymentRequiredError
    expect(error.metaMessages).toContain('  test/charge: not supported by the provider')
  })
})
