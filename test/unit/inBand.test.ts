/**
 * In-band signalling over HTTP against servers that do what a real one will not on demand: a
 * credential sent in root-level `_meta` (never in `Authorization`), `-32043` handled as a refused
 * credential, and hostile `-32042` answers (another status, garbage data,
 * hundreds of challenges, a credential echoed back) that pay nothing and pass through typed.
 */
import { Challenge } from 'mppx'
import { createClient } from 'viem'
import { expect, test } from 'vitest'
import { mppHttp, PaymentFailedError, PaymentRequiredError } from '../../src/index.js'
import { challengeHeader, fakeChain, fakeProvider, receiptHeader } from '../support/fakePayments.js'
import { useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'

const serve = useFakeServers()

/** A challenge of the fake `test` method, as the object a `-32042` carries. */
const challengeObject = () => Challenge.deserialize(challengeHeader())

const answer = (id: unknown, body: Record<string, unknown>) =>
  JSON.stringify({ jsonrpc: '2.0', id, ...body })

const required = (id: unknown, data: Record<string, unknown>) =>
  answer(id, { error: { code: -32042, message: 'Payment Required', data } })

function clientOf(url: string, provider = fakeProvider().provider, hooks = {}) {
  return createClient({ chain: fakeChain, transport: mppHttp(url, { provider, ...hooks }) })
}

const json = { 'content-type': 'application/json' }

/** A receipt as `_meta` carries it, for `challengeId` if given. */
const receiptObject = (reference: string, challengeId?: string) => ({
  ...JSON.parse(Buffer.from(receiptHeader(reference), 'base64url').toString()),
  ...(challengeId ? { challengeId } : {}),
})

/**
 * A server that answers `-32042` (one challenge) to every message without a credential in its
 * `_meta`, and `paid(message, credential)` to one with it.
 */
const paidOnlyServer = (
  paid: (message: { id: unknown }, credential: { challenge: { id: string } }) => string,
) =>
  serve((request, response) => {
    const message = JSON.parse(request.body)
    const credential = message._meta?.['org.paymentauth/credential']
    response
      .writeHead(200, json)
      .end(
        credential
          ? paid(message, credential)
          : required(message.id, { httpStatus: 402, challenges: [challengeObject()] }),
      )
  })

/** A server that answers every message with a `-32042` of `challenges`. */
const challengingServer = (challenges: unknown[]) =>
  serve((request, response) => {
    response
      .writeHead(200, json)
      .end(required(JSON.parse(request.body).id, { httpStatus: 402, challenges }))
  })

test('a -32042 in a 200 is paid once: the credential goes in root-level _meta, the receipt is read from _meta', async () => {
  const { provider, calls } = fakeProvider()
  const receipts: unknown[] = []
  const server = await paidOnlyServer((message) =>
    answer(message.id, {
      result: '0x2a',
      _meta: { 'org.paymentauth/receipt': receiptObject('0xfeed') },
    }),
  )
  const client = clientOf(server.url, provider, {
    onReceipt: ({ receipt }: { receipt?: unknown }) => receipts.push(receipt),
  })
  expect(await client.request({ method: 'eth_chainId' })).toBe('0x2a')
  expect(calls.authorized).toHaveLength(1)
  expect(server.requests.map(({ authorization }) => authorization)).toEqual([undefined, undefined])
  const paid = JSON.parse(server.requests[1]!.body)
  expect(paid._meta['org.paymentauth/credential']).toMatchObject({
    challenge: { id: calls.authorized[0] },
    payload: { proof: `paid-${calls.authorized[0]}` },
  })
  expect(receipts).toEqual([expect.objectContaining({ reference: '0xfeed' })])
})

test('-32043 after the credential: a refused payment (PaymentFailedError), nothing paid again', async () => {
  const { provider, calls } = fakeProvider()
  const server = await serve((request, response) => {
    const message = JSON.parse(request.body)
    const code = message._meta ? -32043 : -32042
    response.writeHead(200, json).end(
      answer(message.id, {
        error: {
          code,
          message: 'x',
          data: {
            httpStatus: 402,
            challenges: [challengeObject()],
            failure: { reason: 'signature-invalid' },
          },
        },
      }),
    )
  })
  const error = await rejectionOf(clientOf(server.url, provider).request({ method: 'eth_chainId' }))
  expect(
    (error as PaymentFailedError).walk((cause) => cause instanceof PaymentFailedError),
  ).toBeInstanceOf(PaymentFailedError)
  expect(calls.authorized).toHaveLength(1)
  expect(server.requests).toHaveLength(2)
})

test.each([
  [
    'an httpStatus other than 402',
    (id: unknown) => required(id, { httpStatus: 500, challenges: [challengeObject()] }),
  ],
  [
    'garbage data',
    (id: unknown) => answer(id, { error: { code: -32042, message: 'x', data: 'garbage' } }),
  ],
  ['challenges that are not a list', (id: unknown) => required(id, { challenges: { id: 'x' } })],
])('%s: nothing paid, the JSON-RPC error reaches the caller', async (_, body) => {
  const { provider, calls } = fakeProvider()
  const server = await serve((request, response) => {
    response.writeHead(200, json).end(body(JSON.parse(request.body).id))
  })
  const error = await rejectionOf(clientOf(server.url, provider).request({ method: 'eth_chainId' }))
  expect(error).not.toBeInstanceOf(PaymentFailedError)
  expect(calls.prepared).toEqual([])
  expect(server.requests).toHaveLength(1)
})

test('a hundred and twenty challenges (past what a header may hold): PaymentRequiredError, nothing paid', async () => {
  const { provider, calls } = fakeProvider()
  const server = await challengingServer(Array.from({ length: 120 }, challengeObject))
  const error = await rejectionOf(clientOf(server.url, provider).request({ method: 'eth_chainId' }))
  expect(
    (error as PaymentRequiredError).walk((cause) => cause instanceof PaymentRequiredError),
  ).toBeInstanceOf(PaymentRequiredError)
  expect(calls.prepared).toEqual([])
})

test('a server echoing a credential in _meta, or a receipt that is not one: ignored, the result returned', async () => {
  const { provider, calls } = fakeProvider()
  const server = await serve((request, response) => {
    const { id } = JSON.parse(request.body)
    response.writeHead(200, json).end(
      answer(id, {
        result: '0x1',
        _meta: {
          'org.paymentauth/credential': { challenge: challengeObject(), payload: {} },
          'org.paymentauth/receipt': 42,
        },
      }),
    )
  })
  expect(await clientOf(server.url, provider).request({ method: 'eth_chainId' })).toBe('0x1')
  expect(calls.prepared).toEqual([])
})

test("a receipt for another challenge than the one paid is not this payment's: no receipt reaches onReceipt, the result does", async () => {
  const { provider, calls } = fakeProvider()
  const receipts: unknown[] = []
  const server = await paidOnlyServer((message, credential) => {
    const paid = credential.challenge.id
    // The first paid call gets a receipt for another challenge, the second its own.
    const named = server.requests.length === 2 ? `not-${paid}` : paid
    return answer(message.id, {
      result: '0x1',
      _meta: { 'org.paymentauth/receipt': receiptObject('0xfeed', named) },
    })
  })
  const client = clientOf(server.url, provider, {
    onReceipt: ({ receipt }: { receipt?: unknown }) => receipts.push(receipt),
  })
  expect(await client.request({ method: 'eth_chainId' })).toBe('0x1')
  expect(await client.request({ method: 'eth_blockNumber' })).toBe('0x1')
  expect(calls.authorized).toHaveLength(2)
  expect(receipts).toEqual([undefined, expect.objectContaining({ reference: '0xfeed' })])
})

test('an answer too large to be a signal (1000 challenges): read as the JSON-RPC error it is, nothing paid', async () => {
  const { provider, calls } = fakeProvider()
  const server = await challengingServer(Array.from({ length: 1000 }, challengeObject))
  const error = await rejectionOf(clientOf(server.url, provider).request({ method: 'eth_chainId' }))
  expect(error).toMatchObject({ code: -32042 })
  expect(calls.prepared).toEqual([])
})
