/**
 * One paying process of bench/processes.ts and bench/fleet.ts: a `session()` on a memory store,
 * `fileChannelStore(path)` or `redisChannelStore` (a `redis://` URL, prefix
 * `VIEM_MPP_BENCH_PREFIX`), paying `eth_blockNumber` calls to the paid server.
 *
 * Arguments: the paid URL, the localnet's RPC URL, its chain id, the payer's private key, the
 * store (`memory`, a path or a URL), the number of calls, how many are in flight at once, and a
 * round trip in ms that each request waits, on average, before it leaves (an endpoint across a
 * network). It
 * makes one call first (so that its channel is open, or taken up, before anything is timed),
 * prints `ready`, waits for a line on stdin, makes the calls, prints `{ calls, failed }` as one
 * JSON line, and once stdin ends, releases its channel.
 */
import { createInterface } from 'node:readline'
import { createClient, type Hex, http } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { memoryChannelStore, mppHttp, session } from '../src/index.js'
import { fileChannelStore, redisChannelStore } from '../src/node/index.js'
import { defineLocalnetChain } from '../src/testing/index.js'

const [
  paidUrl = '',
  rpcUrl = '',
  chainId = '',
  privateKey = '',
  store = '',
  calls = '0',
  inFlight = '1',
  roundTripMs = '0',
] = process.argv.slice(2)

const chain = defineLocalnetChain({ id: Number(chainId), rpcUrl })
const shared =
  store === 'memory'
    ? undefined
    : /^rediss?:/.test(store)
      ? redisChannelStore({ redis: store, prefix: process.env.VIEM_MPP_BENCH_PREFIX })
      : fileChannelStore(store)
const provider = session({
  account: privateKeyToAccount(privateKey as Hex),
  client: createClient({ chain, transport: http(rpcUrl) }),
  store: shared ?? memoryChannelStore(),
})
const roundTrip = Number(roundTripMs)
let spread = Math.random()
const nextSpread = () => {
  spread = (spread + 0.6180339887498949) % 1
  return spread
}
const fetchFn: typeof fetch = async (input, init) => {
  // Spread over ±50 %: requests of payers that left in step would reach the server in bursts and
  // queue there (a convoy that a real network does not keep together). A golden-ratio sequence
  // from a random start: every payer's delays add up to the same total, within one round trip.
  if (roundTrip > 0)
    await new Promise((resolve) => setTimeout(resolve, roundTrip * (0.5 + nextSpread())))
  return fetch(input, init)
}
const rpc = createClient({ transport: mppHttp(paidUrl, { provider, retryCount: 0, fetchFn }) })
const call = () => rpc.request({ method: 'eth_blockNumber' })

await call()
console.log('ready')
const stdin = createInterface({ input: process.stdin })
await new Promise<void>((resolve) => stdin.once('line', () => resolve()))

const total = Number(calls)
let next = 0
let failed = 0
const worker = async () => {
  while (next < total) {
    next++
    await call().catch(() => {
      failed++
    })
  }
}
await Promise.all(Array.from({ length: Number(inFlight) }, worker))
console.log(JSON.stringify({ calls: total, failed }))
await new Promise<void>((resolve) => stdin.once('close', resolve))
await provider.release()
await shared?.close()
process.exit(0)
