import type WebSocket from 'ws'

/** The methods that live on a socket: forwarded over the upstream's WebSocket, not its HTTP. */
export const socketMethods: ReadonlySet<unknown> = new Set(['eth_subscribe', 'eth_unsubscribe'])

/**
 * One client socket's connection to the upstream's WebSocket (anvil serves it on its HTTP port),
 * for subscriptions: `eth_subscribe`/`eth_unsubscribe` go over it under ids of its own (the
 * client's id restored in the answer), and each `eth_subscription` notification is handed to
 * `onNotification` as it came — a notification is never paid. Opened on first use; `onClose`
 * when the upstream drops it (the client's subscriptions are gone with it).
 *
 * @example
 * ```ts
 * const upstream = upstreamSocket('ws://127.0.0.1:8545', (text) => client.send(text), () => client.terminate())
 * const answer = await upstream.forward('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
 * ```
 */
export function upstreamSocket(
  url: string,
  onNotification: (text: string) => void,
  onClose: () => void,
) {
  const waiting = new Map<
    number,
    { id: unknown; resolve: (text: string) => void; reject: (error: Error) => void }
  >()
  let opened: Promise<WebSocket> | undefined
  let next = 0
  let closing = false

  const open = () =>
    (opened ??= import('ws').then(
      ({ default: Socket }) =>
        new Promise<WebSocket>((resolve, reject) => {
          const socket = new Socket(url)
          socket.once('open', () => resolve(socket))
          socket.once('error', reject)
          socket.on('message', (data) => {
            const text = String(data)
            const message = JSON.parse(text) as { id?: number; method?: string }
            if (message.method === 'eth_subscription') return onNotification(text)
            const request = waiting.get(message.id as number)
            waiting.delete(message.id as number)
            request?.resolve(JSON.stringify({ ...message, id: request.id }))
          })
          socket.on('close', () => {
            for (const request of waiting.values())
              request.reject(new Error('Upstream socket closed.'))
            waiting.clear()
            if (!closing) onClose()
          })
        }),
    ))

  return {
    /** Sends one request (a JSON-RPC object, as text) upstream: the answer, as text. */
    async forward(body: string): Promise<string> {
      const { id, ...message } = JSON.parse(body) as { id?: unknown }
      const socket = await open()
      const upstreamId = ++next
      return new Promise((resolve, reject) => {
        waiting.set(upstreamId, { id, resolve, reject })
        socket.send(JSON.stringify({ ...message, id: upstreamId }))
      })
    },
    close() {
      closing = true
      void opened?.then(
        (socket) => socket.close(),
        () => {},
      )
    },
  }
}
