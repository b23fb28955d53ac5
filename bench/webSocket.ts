/**
 * WebSocket, side by side in one run: (1) the unpaid path, `mppWebSocket()` against viem's
 * `webSocket()` on the same loopback WebSocket JSON-RPC server (a `ws` server answering at once,
 * so that only the transports' own work shows), in alternating rounds; (2) paid session calls
 * over WebSocket (`mppWebSocket`, `startPaidRpc({ transport: 'ws' })`) against the same over
 * HTTP with in-band signalling (`mppHttp`, `signalling: 'jsonrpc'`): the same mppx gate, the same
 * localnet. Figures: calls/s and mean latency, sequential calls, as ratios. Run by
 * `npm run bench`; see BENCHMARKS.md.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { createClient, http, webSocket } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { WebSocketServer } from 'ws'
import { mppHttp, mppWebSocket, session } from '../src/index.js'
import { defineLocalnetChain, startLocalnet, startPaidRpc } from '../src/testing/index.js'
import { round } from './payers.js'

const unpaidRounds = 12
const unpaidCalls = 10_000
const paidCalls = 300

/** Calls/s of `calls` sequential calls of `call`. */
async function rate(call: () => Promise<unknown>, calls: number) {
  const start = performance.now()
  for (let i = 0; i < calls; i++) await call()
  const seconds = (performance.now() - start) / 1000
  return { callsPerSecond: calls / seconds, meanLatencyMs: (seconds * 1000) / calls }
}

// (1) The unpaid path.
const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
await new Promise((resolve) => server.once('listening', resolve))
server.on('connection', (socket) =>
  socket.on('message', (data) => {
    const { id } = JSON.parse(String(data)) as { id: number }
    socket.send(JSON.stringify({ jsonrpc: '2.0', id, result: '0x1234' }))
  }),
)
const unpaidUrl = `ws://127.0.0.1:${(server.address() as { port: number }).port}`
const plain = createClient({ transport: webSocket(unpaidUrl) })
// A provider that is never asked (the server never charges): the unpaid path alone.
const idleChain = defineLocalnetChain({ id: 1337, rpcUrl: 'http://127.0.0.1:1' })
const paidSocket = createClient({
  transport: mppWebSocket(unpaidUrl, {
    provider: session({
      account: privateKeyToAccount(`0x${'1'.repeat(64)}`),
      client: createClient({ chain: idleChain, transport: http() }),
    }),
  }),
})
const blockNumber = (client: typeof plain) => () => client.request({ method: 'eth_blockNumber' })
await rate(blockNumber(plain), 500)
await rate(blockNumber(paidSocket), 500)
const unpaid = { webSocket: [] as number[], mppWebSocket: [] as number[] }
// Each round runs both, in turn first (so that neither always runs on a warmer process), and
// gives one paired ratio: drift between rounds cancels out of it.
const ratios: number[] = []
for (let round_ = 0; round_ < unpaidRounds; round_++) {
  const order =
    round_ % 2 === 0
      ? (['webSocket', 'mppWebSocket'] as const)
      : (['mppWebSocket', 'webSocket'] as const)
  const rates = { webSocket: 0, mppWebSocket: 0 }
  for (const name of order)
    rates[name] = (
      await rate(blockNumber(name === 'webSocket' ? plain : paidSocket), unpaidCalls)
    ).callsPerSecond
  unpaid.webSocket.push(rates.webSocket)
  unpaid.mppWebSocket.push(rates.mppWebSocket)
  ratios.push(rates.mppWebSocket / rates.webSocket)
}
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length / 2
  return sorted.length % 2
    ? sorted[Math.floor(middle)]!
    : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const unpaidRatio = round(median(ratios))
console.log(
  `unpaid, sequential: webSocket() ${median(unpaid.webSocket).toFixed(0)} calls/s, mppWebSocket() ${median(unpaid.mppWebSocket).toFixed(0)} calls/s (${unpaidRounds} rounds of ${unpaidCalls} calls each, in turn first): mppWebSocket ÷ webSocket ${unpaidRatio.toFixed(3)} (median of the paired ratios, ${round(Math.min(...ratios)).toFixed(3)}–${round(Math.max(...ratios)).toFixed(3)}); its time ÷ webSocket's ${(1 / unpaidRatio).toFixed(3)}`,
)
// Closed from the client side first, so that no socket sees its server go.
for (const client of [plain, paidSocket]) (await client.transport.getRpcClient()).close()
await new Promise((resolve) => server.close(resolve))

// (2) Paid session calls, WebSocket against HTTP, one server each on one localnet.
const net = await startLocalnet()
const deposit = 10n ** 9n
const overSocket = await startPaidRpc({
  upstream: net.rpcUrl,
  chain: net.chain,
  intent: 'session',
  transport: 'ws',
  suggestedDeposit: deposit,
})
const overHttp = await startPaidRpc({
  upstream: net.rpcUrl,
  chain: net.chain,
  intent: 'session',
  signalling: 'jsonrpc',
  suggestedDeposit: deposit,
})
const providerFor = (index: number) =>
  session({
    account: privateKeyToAccount(net.accounts[index]!.privateKey),
    client: createClient({ chain: net.chain, transport: http(net.rpcUrl) }),
  })
const socketProvider = providerFor(1)
const httpProvider = providerFor(2)
const socketClient = createClient({
  chain: net.chain,
  transport: mppWebSocket(overSocket.url, { provider: socketProvider }),
})
const httpClient = createClient({
  chain: net.chain,
  transport: mppHttp(overHttp.url, { provider: httpProvider }),
})
// Channels opened first: the figures are the steady state (a voucher per call).
await blockNumber(socketClient as never)()
await blockNumber(httpClient as never)()
const paid = {
  webSocket: await rate(blockNumber(socketClient as never), paidCalls),
  http: await rate(blockNumber(httpClient as never), paidCalls),
}
const paidRatio = round(paid.webSocket.callsPerSecond / paid.http.callsPerSecond)
console.log(
  `paid session, sequential: over WebSocket ${paid.webSocket.callsPerSecond.toFixed(1)} calls/s (${paid.webSocket.meanLatencyMs.toFixed(2)} ms each), over HTTP ${paid.http.callsPerSecond.toFixed(1)} calls/s (${paid.http.meanLatencyMs.toFixed(2)} ms each): WebSocket ÷ HTTP ${paidRatio.toFixed(3)}; ${overSocket.counters.requests} and ${overHttp.counters.requests} requests received`,
)
await Promise.all([socketProvider.release(), httpProvider.release()])
await Promise.all([overSocket.stop(), overHttp.stop()])
await net.stop()

const resultsPath = new URL('./results.json', import.meta.url)
const results = JSON.parse(readFileSync(resultsPath, 'utf8')) as Record<string, unknown>
results.webSocket = {
  unpaid: {
    rounds: unpaidRounds,
    calls: unpaidCalls,
    ...unpaid,
    mppWebSocketOverWebSocket: unpaidRatio,
  },
  paid: { calls: paidCalls, ...paid, webSocketOverHttp: paidRatio },
}
writeFileSync(resultsPath, `${JSON.stringify(results, null, 2)}\n`)
process.exit(0)
