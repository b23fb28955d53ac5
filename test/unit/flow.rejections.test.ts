import { describe, expect, test } from 'vitest'
import { PaymentFailedError } from '../../src/index.js'
import { challengeHeader, fakeProvider } from '../support/fakePayments.js'
import { useFakeServers } from '../support/fakeServer.js'
import { rejectionOf } from '../support/rejection.js'
import {
  accept,
  call,
  clientFor,
  type Refusal,
  refusals,
  rejectWith,
  retryingClient,
  scriptedServer,
} from '../support/scriptedServer.js'

const serve = useFakeServers()

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
      retryingClient(server.url, { provider }).request({ method: 'eth_blockNumber' }),
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
      accept(response, request.body)
    })
    const { provider, calls } = fakeProvider({ bearer: true })
    const client = retryingClient(server.url, { provider, budget: 200n })
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
      retryingClient(server.url, { provider }).request({ method: 'eth_blockNumber' }),
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
      accept(response, request.body)
    })
    const { provider, calls } = fakeProvider({ bearer: true, recover: true })
    expect(
      await retryingClient(server.url, { provider }).request({ method: 'eth_blockNumber' }),
    ).toBe('0x1')
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
      retryingClient(server.url, { provider }).request({ method: 'eth_blockNumber' }),
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
        retryingClient(server.url, { provider }).request({ method: 'eth_blockNumber' }),
      )
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect((error as PaymentFailedError).settled).toBe(true)
      expect(server.paid()).toHaveLength(1)
    },
  )
})

describe('no sequence of rejections pays more than three times for one request', () => {
  const names = Object.keys(refusals)
  const sequences = names.flatMap((a) => names.flatMap((b) => names.map((c) => [a, b, c])))

  test.each([
    { path: 'the 402 path', presend: false },
    { path: 'the pre-send path', presend: true },
  ])(
    `$path: every sequence of ${sequences.length} scripted rejections, non-bearer`,
    async ({ presend }) => {
      const server = await scriptedServer(serve)
      const { provider, calls } = fakeProvider({ recover: true, reuse: presend })
      const client = clientFor(server.url, { provider, retryCount: 3, retryDelay: 1 })
      await call(client)
      for (const [id, sequence] of sequences.entries()) {
        const before = { sent: server.paid().length, prepared: calls.prepared.length }
        server.script.splice(0, Infinity, ...sequence.map((name) => refusals[name] as Refusal))
        await call(client, id + 1).catch(() => {})
        const sent = server.paid().length - before.sent
        expect({ sequence, sent: sent <= 3 }).toEqual({ sequence, sent: true })
        expect(calls.prepared.length - before.prepared).toBe(sent)
      }
      // Every payment is settled one way or the other.
      expect(calls.committed.length + calls.rolledBack.length).toBe(calls.prepared.length)
    },
  )

  test.each([
    { path: 'the 402 path', presend: false },
    { path: 'the pre-send path', presend: true },
  ])('$path: a bearer payment is sent once whatever the server says', async ({ presend }) => {
    const server = await scriptedServer(serve)
    const { provider } = fakeProvider({ bearer: true, reuse: presend })
    const client = clientFor(server.url, { provider, retryCount: 3, retryDelay: 1 })
    await call(client)
    for (const [id, sequence] of sequences.entries()) {
      const before = server.paid().length
      server.script.splice(0, Infinity, ...sequence.map((name) => refusals[name] as Refusal))
      const error = (await rejectionOf(call(client, id + 1))) as PaymentFailedError
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error.settled).toBe(true)
      expect({ sequence, sent: server.paid().length - before }).toEqual({ sequence, sent: 1 })
    }
  })
})

describe('a server that mints challenges about to expire, then calls them expired', () => {
  test('a bearer payment is given the benefit of clock skew once per request: paid twice, not three times', async () => {
    const server = await scriptedServer(serve, { lifetime: 1_000 })
    server.script.push(...Array.from({ length: 3 }, () => refusals['402 expired'] as Refusal))
    const { provider } = fakeProvider({ bearer: true })
    const client = clientFor(server.url, { provider })
    const error = (await rejectionOf(call(client, 1))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.settled).toBe(true)
    expect(error.shortMessage).toBe(
      'The server said the challenge had expired, but it had not; the payment is not made again.',
    )
    expect(server.paid()).toHaveLength(2)
  })
})

describe('a provider hook that throws synchronously', () => {
  test('recover: PaymentFailedError for the rejection, nothing taken', async () => {
    const server = await scriptedServer(serve)
    server.script.push(refusals['410 fresh'] as Refusal)
    const { provider } = fakeProvider()
    const client = clientFor(server.url, {
      provider: {
        ...provider,
        recover() {
          throw new Error('not async')
        },
      },
    })
    const error = (await rejectionOf(call(client, 1))) as PaymentFailedError
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.shortMessage).toBe('The server rejected the payment, and recovering failed.')
    expect(error.status).toBe(410)
    expect(error.settled).toBe(false)
  })
})
