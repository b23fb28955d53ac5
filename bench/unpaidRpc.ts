import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Request as MppxRequest, NodeListener } from 'mppx/server'
import { answerBadGateway, forwarded, upstreamOf } from '../src/testing/paidRpc/upstream.js'

/** A forwarding JSON-RPC server without a payment gate, and what it has seen. */
export type UnpaidRpc = {
  url: string
  counters: { requests: number }
  stop(): Promise<void>
}

/**
 * The unpaid baseline for the session benchmarks: the same hop as `startPaidRpc()` (a loopback
 * node:http server that reads the request through mppx's Node adapter, POSTs its body to the
 * upstream with `fetch` and answers through the same adapter), minus the payment gate. Calls
 * through it cost what calls through the paid server would cost if payment were free.
 */
export async function startUnpaidRpc({ upstream }: { upstream: string }): Promise<UnpaidRpc> {
  const counters = { requests: 0 }
  const target = upstreamOf(upstream)
  const server = createServer(async (req, res) => {
    counters.requests++
    try {
      const request = MppxRequest.fromNodeListener(req, res)
      await NodeListener.sendResponse(res, await forwarded(target, await request.text()))
    } catch (error) {
      answerBadGateway(res, error)
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  let stopping: Promise<void> | undefined
  return {
    url: `http://127.0.0.1:${port}`,
    counters,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return stopping
    },
  }
}
