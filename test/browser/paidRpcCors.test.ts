import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tempoLocalnet } from 'viem/chains'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type PaidRpc, startPaidRpc } from '../../src/testing/index.js'

// A JSON-RPC upstream that answers anything with a chain id: enough for unpaid requests.
let upstream: Server
let upstreamUrl: string
beforeAll(async () => {
  upstream = createServer((_, res) =>
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end('{"jsonrpc":"2.0","id":1,"result":"0x539"}'),
  )
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((resolve) => upstream.close(() => resolve())))

const pageOrigin = 'http://127.0.0.1:5173'
const body = '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'

async function withPaidRpc(cors: string | undefined, run: (rpc: PaidRpc) => Promise<void>) {
  const rpc = await startPaidRpc({
    upstream: upstreamUrl,
    chain: tempoLocalnet,
    intent: 'session',
    cors,
  })
  try {
    await run(rpc)
  } finally {
    await rpc.stop()
  }
}

const corsHeadersOf = (response: Response) =>
  Object.fromEntries(
    [...response.headers].filter(([name]) => name.startsWith('access-control-') || name === 'vary'),
  )

test('cors: a 402 allows the page origin and exposes WWW-Authenticate and Payment-Receipt; the preflight allows Authorization and is not counted', async () => {
  await withPaidRpc(pageOrigin, async (rpc) => {
    const preflight = await fetch(rpc.url, {
      method: 'OPTIONS',
      headers: {
        origin: pageOrigin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    })
    expect(preflight.status).toBe(204)
    expect(corsHeadersOf(preflight)).toEqual({
      'access-control-allow-origin': pageOrigin,
      'access-control-allow-methods': 'POST',
      'access-control-allow-headers': 'Authorization, Content-Type',
      'access-control-expose-headers': 'WWW-Authenticate, Payment-Receipt',
      'access-control-max-age': '600',
      vary: 'Origin',
    })
    expect(rpc.counters.requests).toBe(0)

    const challenge = await fetch(rpc.url, {
      method: 'POST',
      headers: { origin: pageOrigin, 'content-type': 'application/json' },
      body,
    })
    expect(challenge.status).toBe(402)
    expect(challenge.headers.get('www-authenticate')).toMatch(/^Payment /)
    expect(corsHeadersOf(challenge)).toEqual({
      'access-control-allow-origin': pageOrigin,
      'access-control-expose-headers': 'WWW-Authenticate, Payment-Receipt',
      vary: 'Origin',
    })
    expect(rpc.counters).toMatchObject({ requests: 1, challenges: 1 })
  })
})

test("cors '*': any origin, without Vary", async () => {
  await withPaidRpc('*', async (rpc) => {
    const challenge = await fetch(rpc.url, { method: 'POST', body })
    expect(corsHeadersOf(challenge)).toEqual({
      'access-control-allow-origin': '*',
      'access-control-expose-headers': 'WWW-Authenticate, Payment-Receipt',
    })
  })
})

test('no cors (the default): no CORS headers, and OPTIONS is an ordinary unpaid request', async () => {
  await withPaidRpc(undefined, async (rpc) => {
    const challenge = await fetch(rpc.url, {
      method: 'POST',
      headers: { origin: pageOrigin },
      body,
    })
    expect(challenge.status).toBe(402)
    expect(corsHeadersOf(challenge)).toEqual({})
    const options = await fetch(rpc.url, { method: 'OPTIONS', headers: { origin: pageOrigin } })
    expect(corsHeadersOf(options)).toEqual({})
    expect(rpc.counters.requests).toBe(2)
  })
})
