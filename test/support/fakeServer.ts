import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach } from 'vitest'

export type RecordedRequest = {
  method: string
  url: string
  authorization: string | undefined
  body: string
}

export type FakeHandler = (
  request: RecordedRequest,
  response: ServerResponse,
  raw: IncomingMessage,
) => unknown

/** `server` listening on a free loopback port; `stop()` closes it and every connection it holds. */
export async function listening(server: Server) {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  // Keep-alive connections would hold `close` open: they are ended with it.
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  return { url: `http://127.0.0.1:${port}`, stop }
}

/**
 * An in-process HTTP server for what a real MPP server will not do on demand: malformed headers,
 * lies, failures after payment, dropped connections, redirects. It records every request.
 */
async function startFakeServer(handler: FakeHandler) {
  const requests: RecordedRequest[] = []
  const server = createServer(async (raw, response) => {
    const chunks: Buffer[] = []
    for await (const chunk of raw) chunks.push(chunk as Buffer)
    const request = {
      method: raw.method ?? '',
      url: raw.url ?? '',
      authorization: raw.headers.authorization,
      body: Buffer.concat(chunks).toString(),
    }
    requests.push(request)
    try {
      await handler(request, response, raw)
    } catch (error) {
      if (!response.headersSent) response.writeHead(599).end(String(error))
    }
  })
  return {
    ...(await listening(server)),
    requests,
    /** Requests that carried a Payment credential. */
    paid: () => requests.filter((request) => request.authorization?.startsWith('Payment ')),
  }
}

export type FakeServer = Awaited<ReturnType<typeof startFakeServer>>

/** Answers a JSON-RPC request (single or batch) with `result` for every call. */
export function rpcResult(body: string, result: unknown = '0x1') {
  const parsed = JSON.parse(body) as { id: number } | { id: number }[]
  const answer = (call: { id: number }) => ({ jsonrpc: '2.0', id: call.id, result })
  return JSON.stringify(Array.isArray(parsed) ? parsed.map(answer) : answer(parsed))
}

/** Answers a JSON-RPC request as a free node would: 200, `result` for every call, no receipt. */
export const answerRpc = (response: ServerResponse, body: string, result?: unknown) =>
  response.writeHead(200, { 'content-type': 'application/json' }).end(rpcResult(body, result))

/** `serve(handler)` starts a fake server that is stopped after the test. */
export function useFakeServers() {
  const servers: FakeServer[] = []
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.stop()))
  })
  return async function serve(handler: FakeHandler) {
    const server = await startFakeServer(handler)
    servers.push(server)
    return server
  }
}
