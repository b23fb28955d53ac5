/**
 * `mppWebSocket` against WebSocket servers that do what a real one will not on demand: hostile
 * `-32042` answers (garbage data, another status, a challenge sent as a notification) pay
 * nothing; a socket dropped with a paid request in flight is a typed error, never a second
 * payment.
 */
import { Challenge } from 'mppx'
import { createClient } from 'viem'
import { afterEach, describe, expect, test } from 'vitest'
import { WebSocketServer } from 'ws'
import { mppWebSocket, PaymentFailedError, PaymentRequiredError } from '../../src/index.js'
import { challengeHeader, fakeChain, fakeProvider } from '../support/fakePayments.js'
import { rejectionOf } from '../support/rejection.js'
import { until } from '../support/until.js'

type Message = {
  id?: number
  method?: string
  params?: unknown[]
  _meta?: Record<string, unknown>
}
type Handler = (message: Message, send: (answer: unknown) => void, close: () => void) => void

const servers: WebSocketServer[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    for (const socket of server.clients) socket.terminate()
    await new Promise((resolve) => server.close(resolve))
  }
})

/** A loopback WebSocket server answering each message with `handler`; its messages recorded. */
async function serve(handler: Handler) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  servers.push(server)
  await new Promise((resolve) => server.once('listening', resolve))
  const messages: Message[] = []
  server.on('connection', (socket) => {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as Message
      messages.push(message)
      handler(
        message,
        (answer) => socket.send(JSON.stringify(answer)),
        () => socket.terminate(),
      )
    })
  })
  const { port } = server.address() as { port: number }
  return { url: `ws://127.0.0.1:${port}`, messages }
}

const challenge = () => Challenge.deserialize(challengeHeader())
const required = (id: unknown, data: unknown) => ({
  jsonrpc: '2.0',
  id,
  error: { code: -32042, message: 'Payment Required', data },
})

function clientOf(url: string, provider = fakeProvider().provider) {
  return createClient({
    chain: fakeChain,
    transport: mppWebSocket(url, { provider, reconnect: false, retryCount: 0, timeout: 2_000 }),
  })
}

test.each([
  ['garbage data', (id: unknown) => required(id, 'garbage')],
  [
    'an httpStatus other than 402',
    (id: unknown) => required(id, { httpStatus: 500, challenges: [challenge()] }),
  ],
  ['challenges that are not a list', (id: unknown) => required(id, { challenges: 'x' })],
])('a -32042 with %s: nothing paid, the JSON-RPC error reaches the caller', async (_, answer) => {
  const { provider, calls } = fakeProvider()
  const server = await serve((message, send) => send(answer(message.id)))
  const error = await rejectionOf(clientOf(server.url, provider).request({ method: 'eth_chainId' }))
  expect(error).toMatchObject({ code: -32042 })
  expect(calls.prepared).toEqual([])
  expect(server.messages).toHaveLength(1)
})

test('a -32042 sent as a notification (no id) is ignored: the answer that follows is the result, nothing paid', async () => {
  const { provider, calls } = fakeProvider()
  const server = await serve((message, send) => {
    const { id: _, ...notification } = required(0, { httpStatus: 402, challenges: [challenge()] })
    send(notification)
    send({ jsonrpc: '2.0', id: message.id, result: '0x1' })
  })
  expect(await clientOf(server.url, provider).request({ method: 'eth_chainId' })).toBe('0x1')
  expect(calls.prepared).toEqual([])
})

test('the socket dropped once the paid request is sent: PaymentFailedError, the payment counted as made, never made again', async () => {
  const { provider, calls } = fakeProvider()
  const server = await serve((message, send, close) => {
    if (message._meta) return close()
    send(required(message.id, { httpStatus: 402, challenges: [challenge()] }))
  })
  const error = await rejectionOf(clientOf(server.url, provider).request({ method: 'eth_chainId' }))
  const failure = (error as PaymentFailedError).walk((cause) => cause instanceof PaymentFailedError)
  expect(failure).toBeInstanceOf(PaymentFailedError)
  expect(failure).toMatchObject({ settled: true })
  expect(calls.authorized).toHaveLength(1)
  expect(calls.committed).toHaveLength(1)
  expect(server.messages.filter((message) => message._meta)).toHaveLength(1)
})

test('a challenge for another chain: PaymentRequiredError saying why, nothing paid', async () => {
  const { provider, calls } = fakeProvider()
  const other = Challenge.deserialize(challengeHeader({ chainId: 1 }))
  const server = await serve((message, send) =>
    send(required(message.id, { httpStatus: 402, challenges: [other] })),
  )
  const error = await rejectionOf(clientOf(server.url, provider).request({ method: 'eth_chainId' }))
  const refusal = (error as PaymentRequiredError).walk(
    (cause) => cause instanceof PaymentRequiredError,
  ) as PaymentRequiredError
  expect(refusal.reason).toBe('noSupportedChallenge')
  expect(refusal.metaMessages).toContain("  test/charge: chain 1, not the viem client's chain 1337")
  expect(calls.prepared).toEqual([])
  expect(server.messages).toHaveLength(1)
})

test('a hundred and fifty challenges (past what a header may hold): PaymentRequiredError, nothing paid', async () => {
  const { provider, calls } = fakeProvider()
  const challenges = Array.from({ length: 150 }, challenge)
  const server = await serve((message, send) =>
    send(required(message.id, { httpStatus: 402, challenges })),
  )
  const error = await rejectionOf(clientOf(server.url, provider).request({ method: 'eth_chainId' }))
  expect(
    (error as PaymentRequiredError).walk((cause) => cause instanceof PaymentRequiredError),
  ).toBeInstanceOf(PaymentRequiredError)
  expect(calls.prepared).toEqual([])
})

test('three hundred challenges (past the 64 KiB a signal may take): read as the JSON-RPC error it is, nothing paid', async () => {
  const { provider, calls } = fakeProvider()
  const challenges = Array.from({ length: 300 }, challenge)
  const server = await serve((message, send) =>
    send(required(message.id, { httpStatus: 402, challenges })),
  )
  const error = await rejectionOf(clientOf(server.url, provider).request({ method: 'eth_chainId' }))
  expect(error).toMatchObject({ code: -32042 })
  expect(calls.prepared).toEqual([])
})

test("a -32042 answering another request's id is not this request's: ignored, the answer that follows is the result", async () => {
  const { provider, calls } = fakeProvider()
  const server = await serve((message, send) => {
    send(required((message.id ?? 0) + 1_000, { httpStatus: 402, challenges: [challenge()] }))
    send({ jsonrpc: '2.0', id: message.id, result: '0x1' })
  })
  expect(await clientOf(server.url, provider).request({ method: 'eth_chainId' })).toBe('0x1')
  expect(calls.prepared).toEqual([])
})

test('an oversized frame (a 2 MiB -32042) is not read as a signal: the JSON-RPC error, nothing paid; the socket goes on', async () => {
  const { provider, calls } = fakeProvider()
  const padding = 'x'.repeat(2 * 1024 * 1024)
  let first = true
  const server = await serve((message, send) => {
    if (!first) return send({ jsonrpc: '2.0', id: message.id, result: '0x1' })
    first = false
    send(required(message.id, { httpStatus: 402, challenges: [challenge()], padding }))
  })
  const client = clientOf(server.url, provider)
  const error = await rejectionOf(client.request({ method: 'eth_chainId' }))
  expect(error).toMatchObject({ code: -32042 })
  expect(error).not.toBeInstanceOf(PaymentRequiredError)
  expect(calls.prepared).toEqual([])
  expect(await client.request({ method: 'eth_blockNumber' })).toBe('0x1')
})

describe('subscriptions', () => {
  /**
   * A server whose `eth_subscribe` costs a payment the first time only (`askAgain` for every
   * time): it answers `0xsub<n>` and then sends `notifications` notifications.
   */
  async function subscriptionServer({ askAgain = false, notifications = 3 } = {}) {
    let subscriptions = 0
    let paid = false
    return serve((message, send, close) => {
      if (message.method === 'eth_unsubscribe')
        return send({ jsonrpc: '2.0', id: message.id, result: true })
      if (message.method !== 'eth_subscribe') return close()
      if (!message._meta && (askAgain || !paid))
        return send(required(message.id, { httpStatus: 402, challenges: [challenge()] }))
      if (message._meta) paid = true
      const subscription = `0xsub${++subscriptions}`
      send({ jsonrpc: '2.0', id: message.id, result: subscription })
      for (let i = 0; i < notifications; i++)
        send({
          jsonrpc: '2.0',
          method: 'eth_subscription',
          params: { subscription, result: { number: `0x${i.toString(16)}` } },
        })
      // A notification dressed as a challenge: notifications are never paid.
      send({
        jsonrpc: '2.0',
        method: 'eth_subscription',
        params: { subscription, result: null },
        error: { code: -32042, message: 'Payment Required', data: { challenges: [challenge()] } },
      })
    })
  }

  const reconnectingClients: { close(): void }[] = []
  // Closed on purpose before the servers are, so that viem does not try to reconnect to them.
  afterEach(() => {
    for (const rpcClient of reconnectingClients.splice(0)) rpcClient.close()
  })
  const reconnecting = (url: string, provider: ReturnType<typeof fakeProvider>['provider']) => {
    const client = createClient({
      chain: fakeChain,
      transport: mppWebSocket(url, { provider, reconnect: { delay: 20 }, timeout: 2_000 }),
    })
    void client.transport.getRpcClient().then((rpcClient) => reconnectingClients.push(rpcClient))
    return client
  }

  test('eth_subscribe is paid once when asked; its notifications (one dressed as a challenge) never are; what viem keeps to re-subscribe holds no credential', async () => {
    const { provider, calls } = fakeProvider()
    const server = await subscriptionServer()
    const client = reconnecting(server.url, provider)
    const data: unknown[] = []
    const { subscriptionId, unsubscribe } = await client.transport.subscribe({
      params: ['newHeads'],
      onData: (each: unknown) => void data.push(each),
    })
    expect(subscriptionId).toBe('0xsub1')
    await until(async () => data.length === 4)
    expect(calls.authorized).toHaveLength(1)
    expect(server.messages.filter((message) => message._meta)).toHaveLength(1)
    const rpcClient = await client.transport.getRpcClient()
    const kept = rpcClient.subscriptions.get('0xsub1') as { body: Record<string, unknown> }
    expect(kept.body).toEqual({ method: 'eth_subscribe', params: ['newHeads'] })
    await unsubscribe()
    expect(server.messages.at(-1)).toMatchObject({
      method: 'eth_unsubscribe',
      params: ['0xsub1'],
    })
    expect(rpcClient.subscriptions.size).toBe(0)
  })

  test('a reconnect the server does not charge for pays nothing; one it charges for is paid once more', async () => {
    for (const askAgain of [false, true]) {
      const { provider, calls } = fakeProvider()
      const server = await subscriptionServer({ askAgain, notifications: 1 })
      const client = reconnecting(server.url, provider)
      const data: unknown[] = []
      const subscription = await client.transport.subscribe({
        params: ['newHeads'],
        onData: (each: unknown) => void data.push(each),
        onError: () => {},
      })
      await until(async () => data.length === 2)
      ;(await client.transport.getRpcClient()).socket.close()
      await until(async () => data.length === 4)
      expect(subscription.subscriptionId).toBe('0xsub2')
      expect(calls.authorized).toHaveLength(askAgain ? 2 : 1)
      // The re-subscription went out without a credential: none was replayed.
      const subscribes = server.messages.filter((message) => message.method === 'eth_subscribe')
      expect(subscribes.map((message) => message._meta !== undefined)).toEqual(
        askAgain ? [false, true, false, true] : [false, true, false],
      )
      await subscription.unsubscribe()
    }
  })

  test('unsubscribing as the socket closes resolves, as webSocket() does (watchers do not wait for it): no unhandled rejection', async () => {
    const { provider } = fakeProvider()
    const server = await serve((message, send, close) => {
      if (message.method === 'eth_unsubscribe') return close()
      send({ jsonrpc: '2.0', id: message.id, result: '0xsub1' })
    })
    const client = clientOf(server.url, provider)
    const { unsubscribe } = await client.transport.subscribe({
      params: ['newHeads'],
      onData: () => {},
    })
    expect(await unsubscribe()).toBeUndefined()
  })

  test('a subscription refused (a JSON-RPC error) rejects and tells onError, as webSocket() does; nothing paid', async () => {
    const { provider, calls } = fakeProvider()
    const server = await serve((message, send) =>
      send({
        jsonrpc: '2.0',
        id: message.id,
        error: { code: -32601, message: 'no subscriptions' },
      }),
    )
    const errors: unknown[] = []
    const error = await rejectionOf(
      clientOf(server.url, provider).transport.subscribe({
        params: ['newHeads'],
        onData: () => {},
        onError: (each: unknown) => void errors.push(each),
      }),
    )
    expect(error).toEqual({ code: -32601, message: 'no subscriptions' })
    expect(errors).toEqual([error])
    expect(calls.prepared).toEqual([])
  })
})
