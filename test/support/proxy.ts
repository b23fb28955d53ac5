import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Credential } from 'mppx'

/** What a paid request's credential carries (a session's action and amount, for instance). */
export type PaidPayload = { action?: string; cumulativeAmount?: string } & Record<string, unknown>

/**
 * What the proxy does with a request carrying a Payment credential: `forward()` sends it on and
 * gives the answer; return that answer (or another) to pass it back, or `'drop'` to destroy the
 * connection without answering, as a network failure would after the server has processed it.
 */
export type PaidHook = (
  payload: PaidPayload,
  forward: () => Promise<Response>,
) => Promise<Response | 'drop'>

/**
 * A loopback proxy in front of `target` that lets a test delay or drop paid requests. With
 * `snapshots: false` it keeps the `Payment-Session` request header from the server, which then
 * answers as a server that sends no session snapshots.
 */
export async function startProxy(
  target: string,
  onPaid: PaidHook,
  { snapshots = true }: { snapshots?: boolean } = {},
) {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks)
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers))
      if (typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name))
        headers.set(name, value)
    if (!snapshots) headers.delete('payment-session')
    const forward = () =>
      fetch(new URL(req.url ?? '/', target), {
        method: req.method ?? 'POST',
        headers,
        ...(body.length ? { body } : {}),
      })
    const authorization = req.headers.authorization
    const answer = authorization?.startsWith('Payment ')
      ? await onPaid(Credential.deserialize(authorization).payload as PaidPayload, forward)
      : await forward()
    if (answer === 'drop') {
      req.socket.destroy()
      return
    }
    const text = await answer.text()
    const passed: Record<string, string> = {}
    for (const name of ['content-type', 'www-authenticate', 'payment-receipt']) {
      const value = answer.headers.get(name)
      if (value) passed[name] = value
    }
    res.writeHead(answer.status, passed).end(text)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
