/**
 * The paid RPC over WebSocket (`transport: 'ws'`): each message answered in-band by the same gate,
 * subscriptions relayed from the upstream's own WebSocket.
 */
import type { createServer } from 'node:http'
import type { PaidRpcCounters } from './counters.js'
import { takeCredential } from './inband.js'
import { upstreamSocket } from './upstreamSocket.js'

/** A frame larger than this is refused (the socket closed with 1009): a test server's bound. */
const maxFrame = 1024 * 1024

/**
 * Serves in-band paid JSON-RPC over WebSocket on `server`'s port: each message is answered (the
 * same gate as over HTTP) on the socket it came on; a socket's subscriptions live on a WebSocket
 * of its own to the upstream, whose notifications are relayed unpaid.
 */
export async function serveWebSocket(
  server: ReturnType<typeof createServer>,
  {
    answererFor,
    upstream,
    counters,
  }: {
    answererFor: (
      overSocket: (body: string) => Promise<string>,
    ) => (text: string) => Promise<unknown>
    upstream: string
    counters: PaidRpcCounters
  },
) {
  const { WebSocketServer } = await import('ws')
  const sockets = new WebSocketServer({ server, maxPayload: maxFrame })
  sockets.on('connection', (socket) => {
    const send = (text: string) => socket.readyState === socket.OPEN && socket.send(text)
    const subscriptions = upstreamSocket(
      upstream,
      (notification) => {
        counters.notifications++
        send(notification)
      },
      () => socket.terminate(),
    )
    const answer = answererFor(subscriptions.forward)
    // A frame too large, a broken peer: ws closes the socket (1009, …); nothing to report.
    socket.on('error', () => {})
    socket.on('close', () => subscriptions.close())
    socket.on('message', async (data) => {
      counters.requests++
      const text = String(data)
      // Ending a subscription is free: it ends what was paid for.
      const reply = await (isUnsubscribe(text)
        ? subscriptions
            .forward(JSON.stringify(takeCredential(JSON.parse(text)).message))
            .then((answer) => JSON.parse(answer) as unknown)
        : answer(text)
      ).catch((error: unknown) => ({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32603, message: (error as Error).message },
      }))
      send(JSON.stringify(reply))
    })
  })
  return sockets
}

function isUnsubscribe(text: string) {
  try {
    return (JSON.parse(text) as { method?: unknown }).method === 'eth_unsubscribe'
  } catch {
    return false
  }
}
