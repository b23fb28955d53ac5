/**
 * `mppWebSocket` against WebSocket servers that do what a real one will not on demand: hostile
 * `-32042` answers (garbage data, another status, a challenge sent as a notification) pay
 * nothing; a socket dropped with a paid request in flight is a typed error, never a second
 * payment.
 */
import { Challenge } from 'mppx'
import { createClient } from 'viem'
import { afterEach, expect, test } from 'vitest'
import { WebSocketServer } from 'ws'
import { mppWebSocket, PaymentFailedError } from '../../src/index.js'
import { challengeHeader, fakeChain, fakeProvider } from '../support/fakePayments.js'
import { rejectionOf } from '../support/rejection.js'

type Message = { id?: number; method?: string; _meta?: Record<string, unknown> }
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
