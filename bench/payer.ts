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
import { createClient } from 'viem'
import { mppHttp } from '../src/index.js'
import { inParallel } from '../test/support/inParallel.js'
import { payerArguments, payerSession } from '../test/support/payerProcess.js'

const args = payerArguments(process.argv.slice(2))
const [roundTripMs = '0'] = args.rest
const { provider, store } = payerSession(args, { prefix: process.env.VIEM_MPP_BENCH_PREFIX })
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
const rpc = createClient({
  transport: mppHttp(args.paidUrl, { provider, retryCount: 0, fetchFn }),
})
const call = () => rpc.request({ method: 'eth_blockNumber' })

await call()
console.log('ready')
const stdin = createInterface({ input: process.stdin })
await new Promise<void>((resolve) => stdin.once('line', () => resolve()))

const total = args.calls
let failed = 0
await inParallel(total, args.inFlight, async () => {
  await call().catch(() => {
    failed++
  })
})
console.log(JSON.stringify({ calls: total, failed }))
await new Promise<void>((resolve) => stdin.once('close', resolve))
await provider.release()
await store.close?.()
process.exit(0)
