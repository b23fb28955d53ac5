/**
 * A fleet on one Redis: 1, 4 and 12 payer processes (bench/payer.ts) sharing one
 * `redisChannelStore` (a redis-server from the system, `startRedis()`), side by side with the same
 * processes on memory stores (nothing shared: the baseline no store can beat), in one run against
 * one mppx session server. Each request waits a round trip ({@link roundTrips}) before it leaves
 * (an endpoint across a network), so that the server, on this 2-core machine, is not the limit
 * from the first process. Figures: aggregate paid calls/s, its ratio to linear (n × one
 * process), the Redis store's over the memory stores', and the Redis commands per paid call
 * while the payers pay (`INFO commandstats`, from the moment they are let go to their last
 * result: the steady state, channels already leased). Run by `npm run bench`; see
 * BENCHMARKS.md.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { Redis as IoRedis } from 'ioredis'
import { startRedis } from '../src/testing/index.js'
import { rateOf, round, runPayers, startServers } from './payers.js'

const processCounts = [1, 4, 12] as const
/** Round trips of the runs: the server below its knee at the longer one, up to 12 processes. */
const roundTrips = [250, 600] as const
const calls = 40
const inFlight = 1

const redis = await startRedis().catch((error: Error) => {
  console.log(`bench/fleet.ts: not run — ${error.message.split('\n')[0]}`)
  process.exit(0)
})
const servers = await startServers()
const admin = new IoRedis(redis.url)

/**
 * Commands clients sent Redis so far: the store's scripts (`EVALSHA`, or `EVAL` the first time)
 * and connection commands (`CLIENT`, `HELLO`, …; the bench's own `INFO` not counted). The
 * commands a script runs inside Redis are counted by `INFO commandstats` too: `inside` sums them
 * all, for the record.
 */
async function commands() {
  const stats = await admin.info('commandstats')
  let sent = 0
  let inside = 0
  for (const [, name = '', count] of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (name === 'info' || name.startsWith('config')) continue
    inside += Number(count)
    if (/^(evalsha|eval|client|hello|auth|select|ping|quit)\b/.test(name)) sent += Number(count)
  }
  return { sent, inside }
}

type Figure = {
  store: 'memory' | 'redis'
  processes: number
  roundTripMs: number
  callsPerSecond: number
  failed: number
  /** The share of the machine's CPU time in use while the payers paid. */
  machineBusy: number
  /** The servers' process's CPU time over the time the payers paid (1: one core, all the time). */
  serverCpu: number
  /** For the Redis store: commands sent to Redis per paid call while paying. */
  commandsPerCall?: number
  /** For the Redis store: commands Redis ran per paid call, those inside scripts included. */
  commandsInsidePerCall?: number
}
const figures: Figure[] = []
try {
  for (const roundTripMs of roundTrips)
    for (const processes of processCounts)
      for (const store of ['memory', 'redis'] as const) {
        let before = { sent: 0, inside: 0 }
        let perCall: { sent: number; inside: number } | undefined
        let serverCpu = 0
        let started = 0
        const figure = await runPayers({
          ready: servers.ready,
          store: store === 'redis' ? redis.url : 'memory',
          processes,
          calls,
          inFlight,
          roundTripMs,
          env: { VIEM_MPP_BENCH_PREFIX: 'bench-fleet' },
          letGo: async () => {
            before = await commands()
            serverCpu = await servers.cpu()
            started = performance.now()
          },
          measured: async () => {
            serverCpu = round(
              ((await servers.cpu()) - serverCpu) / 1000 / (performance.now() - started),
            )
            if (store !== 'redis') return
            const after = await commands()
            perCall = {
              sent: (after.sent - before.sent) / (processes * calls),
              inside: (after.inside - before.inside) / (processes * calls),
            }
          },
        })
        figures.push({
          store,
          processes,
          roundTripMs,
          ...figure,
          serverCpu,
          ...(perCall === undefined
            ? {}
            : {
                commandsPerCall: round(perCall.sent),
                commandsInsidePerCall: round(perCall.inside),
              }),
        })
        console.log(
          `${roundTripMs} ms round trip, ${processes} process${processes > 1 ? 'es' : ''}, ${store} store${store === 'memory' ? 's' : ''}: ${figure.callsPerSecond.toFixed(1)} paid calls/s${figure.failed ? ` (${figure.failed} failed)` : ''}, CPUs ${(figure.machineBusy * 100).toFixed(0)} % busy, server ${(serverCpu * 100).toFixed(0)} % of a core${perCall === undefined ? '' : `, ${perCall.sent.toFixed(3)} Redis commands sent per paid call (${perCall.inside.toFixed(2)} run, inside scripts included)`}`,
        )
      }
} finally {
  admin.disconnect()
  servers.stop()
  await redis.stop()
}

const rate = (store: Figure['store'], processes: number, roundTripMs: number) =>
  rateOf(figures, { store, processes, roundTripMs })
const ratios = roundTrips.flatMap((roundTripMs) =>
  processCounts.map((processes) => {
    const linear = (store: Figure['store']) => processes * rate(store, 1, roundTripMs)
    return {
      roundTripMs,
      processes,
      redisOverLinear: round(rate('redis', processes, roundTripMs) / linear('redis')),
      memoryOverLinear: round(rate('memory', processes, roundTripMs) / linear('memory')),
      redisOverMemory: round(
        rate('redis', processes, roundTripMs) / rate('memory', processes, roundTripMs),
      ),
    }
  }),
)
for (const { roundTripMs, processes, redisOverLinear, memoryOverLinear, redisOverMemory } of ratios)
  console.log(
    `${roundTripMs} ms round trip, ${processes} process${processes > 1 ? 'es' : ''}: Redis store ${redisOverLinear.toFixed(2)} × linear (memory stores ${memoryOverLinear.toFixed(2)} ×), ${redisOverMemory.toFixed(3)} × memory stores`,
  )

const resultsPath = new URL('./results.json', import.meta.url)
const results = JSON.parse(readFileSync(resultsPath, 'utf8')) as Record<string, unknown>
results.fleet = { calls, roundTrips, inFlight, figures, ratios }
writeFileSync(resultsPath, `${JSON.stringify(results, null, 2)}\n`)
process.exit(0)
