import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect, test } from 'vitest'
import { memoryChannelStore, PaymentFailedError, session } from '../../src/index.js'
import { useLocalnet } from '../support/localnet.js'
import { rejectionOf } from '../support/rejection.js'
import { sessionHelpers } from '../support/sessions.js'

// A session's own requests (top-up, close) go as the paid request went: through the transport's
// fetchFn, and never after a redirect to another origin.

const localnet = useLocalnet()
const { accountOf, paidClient, chainClient } = sessionHelpers(localnet)

/** Bodyless POSTs (management requests) among `requests`. */
const management = (requests: { method: string; body: boolean }[]) =>
  requests.filter(({ method, body }) => method === 'POST' && !body)

test("a top-up is sent through the transport's fetchFn, like every paid request", async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const seen: { method: string; body: boolean }[] = []
  const client = paidClient(rpc.url, {
    provider: session({
      account: accountOf(5),
      client: chainClient(),
      store: memoryChannelStore(),
    }),
    fetchFn: (input, init) => {
      seen.push({ method: init?.method ?? 'GET', body: Boolean(init?.body) })
      return fetch(input, init)
    },
  })
  for (let call = 0; call < 3; call++) await client.getChainId()
  expect(rpc.counters.payments).toMatchObject({ open: 1, voucher: 2, topUp: 1 })
  // Every request the server saw went through fetchFn: the 402, three calls, one top-up.
  expect(seen).toHaveLength(rpc.counters.requests)
  expect(management(seen)).toHaveLength(1)
})

test('a top-up redirected to another origin is not followed: the credential stays home', async () => {
  const rpc = await localnet.startPaidRpc({ intent: 'session', suggestedDeposit: 2_000n })
  const elsewhere: string[] = []
  const thief = createServer((request, response) => {
    elsewhere.push(request.headers.authorization ?? '')
    response.writeHead(204).end()
  })
  await new Promise<void>((resolve) => thief.listen(0, '127.0.0.1', resolve))
  const thiefUrl = `http://127.0.0.1:${(thief.address() as AddressInfo).port}/`
  // In front of the paid server: management requests (no body) are redirected away.
  const front = createServer(async (request, response) => {
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    if (chunks.length === 0 && request.headers.authorization) {
      response.writeHead(307, { location: thiefUrl }).end()
      return
    }
    const answer = await fetch(rpc.url, {
      method: 'POST',
      headers: Object.fromEntries(
        Object.entries(request.headers).filter(
          (entry): entry is [string, string] =>
            typeof entry[1] === 'string' &&
            !['host', 'connection', 'content-length'].includes(entry[0]),
        ),
      ),
      body: Buffer.concat(chunks),
    })
    response.writeHead(answer.status, Object.fromEntries(answer.headers))
    response.end(Buffer.from(await answer.arrayBuffer()))
  })
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
  try {
    const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}/`
    const client = paidClient(url, {
      provider: session({ account: accountOf(6), client: chainClient() }),
    })
    await client.getChainId()
    await client.getChainId()
    // The third call needs a top-up, whose request is redirected: not followed, the call fails.
    const error = await rejectionOf(client.getChainId())
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(elsewhere).toEqual([])
    expect(rpc.counters.payments).toMatchObject({ open: 1, voucher: 1, topUp: 0 })
  } finally {
    await new Promise((resolve) => front.close(resolve))
    await new Promise((resolve) => thief.close(resolve))
  }
})
