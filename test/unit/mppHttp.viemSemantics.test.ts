/**
 * mppHttp as a viem transport: the same semantics as http() where payment leaves them alone —
 * options checked when made, JSON-RPC errors after a payment typed as http() types them (final
 * inside fallback()), viem's timeout and the caller's signal around a payment, unpaid calls
 * retried while paid ones are not, and nothing held once an unpaid call is answered.
 */

import { getEventListeners } from 'node:events'
import type { ServerResponse } from 'node:http'
import {
  type BaseError,
  createClient,
  fallback,
  HttpRequestError,
  http,
  InternalRpcError,
  InvalidInputRpcError,
  LimitExceededRpcError,
  MethodNotFoundRpcError,
  TransactionRejectedRpcError,
} from 'viem'
import { afterEach, describe, expect, test, vi } from 'vitest'
import {
  InvalidPaymentTimeoutError,
  type MppHttpTransportConfig,
  mppHttp,
  PaymentFailedError,
} from '../../src/index.js'
import { challengeHeader, fakeChain, fakeProvider, receiptHeader } from '../support/fakePayments.js'
import { rpcResult, useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'

const chain = fakeChain
const serve = useFakeServers()

const answer402 = (response: ServerResponse) =>
  response.writeHead(402, { 'www-authenticate': challengeHeader() }).end()

const answerJson = (response: ServerResponse, body: string) =>
  response
    .writeHead(200, { 'content-type': 'application/json', 'payment-receipt': receiptHeader() })
    .end(body)

const methodsOf = (body: string) =>
  [JSON.parse(body)].flat().map((call: { method: string }) => call.method)

const clientFor = (url: string, config: MppHttpTransportConfig = {}) =>
  createClient({ chain, transport: mppHttp(url, config) })

/** A promise and the function that resolves it, for waiting on an event. */
function signal<value = void>() {
  let resolve!: (value: value) => void
  const promise = new Promise<value>((resolve_) => {
    resolve = resolve_
  })
  return { promise, resolve }
}

describe('paymentTimeout', () => {
  test.each([-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, '1000'])(
    '%s is refused when the transport is made',
    (paymentTimeout) => {
      const fetchFn = vi.fn()
      expect(() =>
        mppHttp('https://rpc.example', { paymentTimeout: paymentTimeout as number, fetchFn }),
      ).toThrow(InvalidPaymentTimeoutError)
      expect(fetchFn).not.toHaveBeenCalled()
    },
  )

  test.each([0, 1, 2 ** 31 - 1])('%s is accepted', (paymentTimeout) => {
    expect(() => mppHttp('https://rpc.example', { paymentTimeout })).not.toThrow()
  })
})

describe('a JSON-RPC error in the answer to a paid request', () => {
  const cases = [
    { code: -32000, type: InvalidInputRpcError },
    { code: -32005, type: LimitExceededRpcError },
    { code: -32601, type: MethodNotFoundRpcError },
    { code: -32603, type: InternalRpcError },
  ] as const

  /** 402 unless paid; paid, the JSON-RPC error `code`. */
  const failingAfterPayment = (code: number) =>
    serve((request, response) => {
      if (!request.authorization) return answer402(response)
      const { id } = JSON.parse(request.body) as { id: number }
      answerJson(
        response,
        JSON.stringify({ jsonrpc: '2.0', id, error: { code, message: 'upstream says no' } }),
      )
    })

  /** Every error of the chain, with no URL secret in its message or url. */
  const expectRedacted = (error: unknown) => {
    for (let cause = error; cause instanceof Error; cause = cause.cause) {
      expect(cause.message).not.toContain('secret')
      expect(String((cause as { url?: string }).url ?? '')).not.toContain('secret')
    }
  }

  test.each(cases)(
    '$code reaches the caller typed as http() types it, paid once, not retried',
    async ({ code, type }) => {
      const server = await failingAfterPayment(code)
      const { provider, calls } = fakeProvider()
      const client = clientFor(`${server.url}/v1/secret?key=secret`, {
        provider,
        retryCount: 3,
        retryDelay: 1,
      })
      const error = await rejectionOf(client.request({ method: 'eth_blockNumber' }))
      expect(error).toBeInstanceOf(type)
      expect((error as InternalRpcError).code).toBe(code)
      expect((error as BaseError).shortMessage).toBe(
        new type(new Error('upstream says no'), { method: 'eth_blockNumber' }).shortMessage,
      )
      expect(calls.authorized).toHaveLength(1)
      expect(server.requests).toHaveLength(2)
      expectRedacted(error)
    },
  )

  test.each(cases)(
    '$code inside fallback(): final, the next transport is not asked',
    async ({ code, type }) => {
      const server = await failingAfterPayment(code)
      const next = await serve((request, response) => answerJson(response, rpcResult(request.body)))
      const { provider, calls } = fakeProvider()
      const client = createClient({
        chain,
        transport: fallback(
          [mppHttp(`${server.url}/v1/secret?key=secret`, { provider }), http(next.url)],
          { retryCount: 3, retryDelay: 1 },
        ),
      })
      const error = (await rejectionOf(client.request({ method: 'eth_blockNumber' }))) as BaseError
      expect(error).toBeInstanceOf(TransactionRejectedRpcError)
      const paidFailure = error.walk((e) => e instanceof PaymentFailedError) as PaymentFailedError
      expect(paidFailure.settled).toBe(true)
      const upstream = error.walk((e) => e instanceof type) as InternalRpcError
      expect(upstream).toBeInstanceOf(type)
      expect(upstream.code).toBe(code)
      expect(next.requests).toHaveLength(0)
      expect(calls.authorized).toHaveLength(1)
      expect(server.requests).toHaveLength(2)
      expectRedacted(error)
    },
  )
})

describe("viem's timeout with a caller's signal", () => {
  test('it does not cut a payment short, and the paid answer comes back', async () => {
    const server = await serve(async (request, response) => {
      if (!request.authorization) return answer402(response)
      await new Promise((resolve) => setTimeout(resolve, 300))
      answerJson(response, rpcResult(request.body))
    })
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, { provider, timeout: 100 })
    const caller = new AbortController()
    expect(await client.request({ method: 'eth_blockNumber' }, { signal: caller.signal })).toBe(
      '0x1',
    )
    expect(calls.authorized).toHaveLength(1)
    expect(server.requests).toHaveLength(2)
  })
})

describe('a caller who gives up', () => {
  test('while the accepted answer arrives: PaymentFailedError, settled, with the abort', async () => {
    const arrived = signal()
    const server = await serve((request, response) => {
      if (!request.authorization) return answer402(response)
      response.writeHead(200, { 'content-type': 'application/json' })
      response.write('{"jsonrpc":"2.0",')
      arrived.resolve()
    })
    const { provider, calls } = fakeProvider()
    const caller = new AbortController()
    const pending = rejectionOf(
      clientFor(server.url, { provider, retryCount: 3 }).request(
        { method: 'eth_blockNumber' },
        { signal: caller.signal },
      ),
    )
    await arrived.promise
    caller.abort()
    const error = await pending
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).settled).toBe(true)
    expect((error.cause as Error).name).toBe('AbortError')
    expect(calls.committed).toHaveLength(1)
    expect(server.requests).toHaveLength(2)
  })

  test('before anything was paid: the abort, as with http()', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization) return answer402(response)
      answerJson(response, rpcResult(request.body))
    })
    const caller = new AbortController()
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, {
      provider,
      onPaymentRequired: async () => {
        caller.abort()
      },
    })
    const error = await rejectionOf(
      client.request({ method: 'eth_blockNumber' }, { signal: caller.signal }),
    )
    expect(error.name).toBe('AbortError')
    expect(calls.authorized).toEqual([])
    expect(server.paid()).toHaveLength(0)
  })
})

describe('calls in flight around many paid requests', () => {
  test('an unpaid call is retried as http() does while 300 paid requests go by; a paid one is not', async () => {
    const paidCount = 300
    const heldUnpaid = signal()
    const heldPaid = signal()
    const released = signal()
    const server = await serve(async (request, response) => {
      const [method] = methodsOf(request.body)
      if (method === 'eth_chainId') {
        // The unpaid call's first attempt fails only once the paid requests are done.
        if (server.requests.filter((r) => methodsOf(r.body)[0] === 'eth_chainId').length === 1) {
          heldUnpaid.resolve()
          await released.promise
        }
        return response.writeHead(503).end('busy')
      }
      if (!request.authorization) return answer402(response)
      if (method === 'eth_gasPrice') {
        heldPaid.resolve()
        await released.promise
        const { id } = JSON.parse(request.body) as { id: number }
        return answerJson(
          response,
          JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32603, message: 'try again' } }),
        )
      }
      answerJson(response, rpcResult(request.body))
    })
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, { provider, retryCount: 2, retryDelay: 1 })

    const unpaid = rejectionOf(client.request({ method: 'eth_chainId' }))
    const paidFailing = rejectionOf(client.request({ method: 'eth_gasPrice' }))
    await Promise.all([heldUnpaid.promise, heldPaid.promise])
    await Promise.all(
      Array.from({ length: paidCount }, (_, i) =>
        client.request({ method: 'eth_getBalance', params: [`0x${i.toString(16)}`, 'latest'] }),
      ),
    )
    released.resolve()

    const unpaidError = await unpaid
    expect(unpaidError).toBeInstanceOf(HttpRequestError)
    expect((unpaidError as HttpRequestError).status).toBe(503)
    const attempts = (method: string) =>
      server.requests.filter((r) => methodsOf(r.body)[0] === method)
    // As http() with retryCount 2: three attempts.
    expect(attempts('eth_chainId')).toHaveLength(3)
    const paidError = await paidFailing
    expect(paidError).toBeInstanceOf(InternalRpcError)
    expect(attempts('eth_gasPrice')).toHaveLength(2)
    expect(calls.authorized).toHaveLength(paidCount + 1)
  })
})

describe('the unpaid path holds nothing once answered', () => {
  const fetchFn = async (_input: unknown, init?: RequestInit) =>
    new Response(rpcResult(String(init?.body), '0x1'), {
      headers: { 'content-type': 'application/json' },
    })

  /** Counts timers of `timeout` ms that are set and neither cleared nor run. */
  function liveTimers(timeout: number) {
    const live = new Set<unknown>()
    const { setTimeout: set, clearTimeout: clear } = globalThis
    vi.spyOn(globalThis, 'setTimeout').mockImplementation(((
      callback: (...args: unknown[]) => void,
      ms?: number,
      ...args: unknown[]
    ) => {
      const timer = set(() => {
        live.delete(timer)
        callback(...args)
      }, ms)
      if (ms === timeout) live.add(timer)
      return timer
    }) as typeof setTimeout)
    vi.spyOn(globalThis, 'clearTimeout').mockImplementation(((timer: never) => {
      live.delete(timer)
      clear(timer)
    }) as typeof clearTimeout)
    return live
  }
  afterEach(() => {
    vi.restoreAllMocks()
  })

  test.each([
    { name: 'one call at a time', batch: false },
    { name: 'batched', batch: true },
  ])('20,000 answered calls ($name) leave no timer and no listener behind', async ({ batch }) => {
    const caller = new AbortController()
    // A timeout no other timer of the test process uses.
    const timeout = 61_234
    const transports = {
      'http()': http('http://rpc.test', { fetchFn, batch, timeout }),
      'mppHttp()': mppHttp('http://rpc.test', {
        fetchFn,
        batch,
        timeout,
        provider: fakeProvider().provider,
      }),
    }
    for (const [name, transport] of Object.entries(transports)) {
      const live = liveTimers(timeout)
      const client = createClient({ chain, transport })
      for (let round = 0; round < 200; round++)
        await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            client.request(
              { method: 'eth_getBalance', params: [`0x${i}`, 'latest'] },
              i % 2 ? { signal: caller.signal } : undefined,
            ),
          ),
        )
      expect({ name, live: live.size }).toEqual({ name, live: 0 })
      expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0)
      vi.restoreAllMocks()
    }
  })
})

// Last: viem's ranking keeps pinging until the test process ends.
describe('idle clients (ranking pings)', () => {
  test('fallback ranking pings a paid endpoint for free, and ranks it as up', async () => {
    const pings = { count: 0, enough: signal() }
    const paid = await serve((request, response) => {
      const methods = methodsOf(request.body)
      if (methods.every((method) => method === 'net_listening') && ++pings.count === 4)
        pings.enough.resolve()
      if (methods.includes('eth_chainId'))
        return answerJson(response, rpcResult(request.body, '0x539'))
      if (!request.authorization) return answer402(response)
      answerJson(response, rpcResult(request.body))
    })
    const down = await serve((_, response) => response.writeHead(503).end('down'))
    const { provider, calls } = fakeProvider()
    // The paid endpoint comes second: only a successful ping can move it up.
    const client = createClient({
      chain,
      transport: fallback([http(down.url), mppHttp(paid.url, { provider })], {
        rank: { interval: 10 },
      }),
    })
    await pings.enough.promise
    expect(calls.authorized).toEqual([])
    expect(paid.paid()).toHaveLength(0)
    // Ranked first on its pings: the down endpoint is not asked.
    expect(await client.request({ method: 'eth_chainId' })).toBe('0x539')
    expect(down.requests.filter((r) => methodsOf(r.body).includes('eth_chainId'))).toEqual([])
    expect(calls.authorized).toEqual([])
  })

  test('net_listening alone is answered true without paying, with its id', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization) return answer402(response)
      answerJson(response, rpcResult(request.body))
    })
    const { provider, calls } = fakeProvider()
    const transport = mppHttp(server.url, { provider })({ chain, retryCount: 0 })
    expect(await transport.request({ method: 'net_listening' })).toBe(true)
    expect(calls.prepared).toEqual([])
    expect(server.paid()).toHaveLength(0)
  })

  test('a batch mixing net_listening with another call is paid once', async () => {
    const server = await serve((request, response) => {
      if (!request.authorization) return answer402(response)
      answerJson(response, rpcResult(request.body))
    })
    const { provider, calls } = fakeProvider()
    const client = clientFor(server.url, { provider, batch: true })
    const results = await Promise.all([
      client.request({ method: 'net_listening' }),
      client.request({ method: 'eth_blockNumber' }),
    ])
    expect(results).toEqual(['0x1', '0x1'])
    expect(calls.authorized).toHaveLength(1)
    expect(server.paid()).toHaveLength(1)
    expect(methodsOf(server.paid()[0]!.body)).toEqual(['net_listening', 'eth_blockNumber'])
  })
})
