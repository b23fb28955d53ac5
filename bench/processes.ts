/**
 * Several processes paying one mppx session server, each with its own channel: 1, 2 and 4 payer
 * processes (bench/payer.ts) on one `fileChannelStore` (each leases a channel of its own from the
 * pool), side by side with the same processes on memory stores (nothing shared: the baseline
 * that no store can beat), in one run against one server (bench/servers.ts, in a child process).
 * Each figure is the aggregate paid calls per second, from the moment all payers are let go to the
 * last one's end. For the file store it also counts the rows written to `channels.db` per paid
 * call (SQLite triggers on mppx's `channels` table and on `viem_mpp_ledger`, added to the bench's
 * own database).
 *
 * Then the same with a round trip of {@link remoteRoundTripMs} added to each request (an endpoint
 * across a network, as in production): the server then has CPU to spare on this 2-core machine,
 * so the aggregate shows whether the processes wait for each other, which the first runs cannot
 * (there the server's CPU is the limit for every store). Run by `npm run bench` after the vitest
 * benches; see BENCHMARKS.md.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadSqlite } from '../src/node/fileStore/sqlite.js'
import { fileChannelStore } from '../src/node/index.js'
import { rateOf, round, runPayers, startServers } from './payers.js'

/** Calls per process, and how many each has in flight at once. */
const calls = 150
const inFlight = 1
const processCounts = [1, 2, 4] as const
/** The round trip of the remote runs, and their calls per process. */
const remoteRoundTripMs = 250
const remoteCalls = 40

const servers = await startServers()
const { ready } = servers
const dir = mkdtempSync(join(tmpdir(), 'viem-mpp-bench-'))
const storePath = join(dir, 'channels.db')
const rowWrites = await countRowWrites(storePath)

type Figure = {
  store: 'memory' | 'file'
  processes: number
  /** The round trip added to each request, in ms (0: the server on this machine, as is). */
  roundTripMs: number
  callsPerSecond: number
  failed: number
}
const figures: Figure[] = []
try {
  for (const roundTripMs of [0, remoteRoundTripMs])
    for (const processes of processCounts)
      for (const store of ['memory', 'file'] as const) {
        const perProcess = roundTripMs ? remoteCalls : calls
        const before = rowWrites.read()
        const figure: Figure = {
          store,
          processes,
          roundTripMs,
          ...(await runPayers({
            ready,
            store: store === 'file' ? storePath : 'memory',
            processes,
            calls: perProcess,
            inFlight,
            roundTripMs,
          })),
        }
        figures.push(figure)
        const writes = store === 'file' ? (rowWrites.read() - before) / (processes * perProcess) : 0
        console.log(
          `${roundTripMs ? `${roundTripMs} ms round trip, ` : ''}${processes} process${processes > 1 ? 'es' : ''}, ${store} store: ${figure.callsPerSecond.toFixed(1)} paid calls/s${figure.failed ? ` (${figure.failed} failed)` : ''}${store === 'file' ? `, ${writes.toFixed(3)} rows written per paid call (the warm-up call and the release included)` : ''}`,
        )
        Object.assign(figure, store === 'file' ? { rowsWrittenPerCall: round(writes) } : {})
      }
} finally {
  rowWrites.close()
  servers.stop()
  rmSync(dir, { recursive: true, force: true })
}

const rate = (store: Figure['store'], processes: number, roundTripMs: number) =>
  rateOf(figures, { store, processes, roundTripMs })
const ratios = [0, remoteRoundTripMs].flatMap((roundTripMs) =>
  processCounts.map((processes) => ({
    roundTripMs,
    processes,
    fileOverMemory: round(
      rate('file', processes, roundTripMs) / rate('memory', processes, roundTripMs),
    ),
    fileOverOneProcess: round(rate('file', processes, roundTripMs) / rate('file', 1, roundTripMs)),
    memoryOverOneProcess: round(
      rate('memory', processes, roundTripMs) / rate('memory', 1, roundTripMs),
    ),
  })),
)
for (const {
  roundTripMs,
  processes,
  fileOverMemory,
  fileOverOneProcess,
  memoryOverOneProcess,
} of ratios)
  console.log(
    `${roundTripMs ? `${roundTripMs} ms round trip, ` : ''}${processes} process${processes > 1 ? 'es' : ''}: file store ${fileOverMemory.toFixed(3)} × memory stores; ${fileOverOneProcess.toFixed(2)} × one process (memory stores: ${memoryOverOneProcess.toFixed(2)} ×)`,
  )

const resultsPath = new URL('./results.json', import.meta.url)
const results = JSON.parse(readFileSync(resultsPath, 'utf8')) as Record<string, unknown>
results.processes = { calls, remoteCalls, remoteRoundTripMs, inFlight, figures, ratios }
writeFileSync(resultsPath, `${JSON.stringify(results, null, 2)}\n`)
process.exit(0)

/**
 * Counts the rows inserted, updated or deleted in the store's tables, with triggers written into
 * the bench's own database (created first, with its tables, by opening the store once).
 */
async function countRowWrites(path: string) {
  const store = fileChannelStore(path)
  await store.list()
  await store.close()
  const { DatabaseSync } = await loadSqlite()
  const database = new DatabaseSync(path)
  database.exec(
    'CREATE TABLE bench_row_writes (n INTEGER NOT NULL); INSERT INTO bench_row_writes VALUES (0);',
  )
  for (const table of ['channels', 'viem_mpp_ledger'])
    for (const event of ['INSERT', 'UPDATE', 'DELETE'])
      database.exec(
        `CREATE TRIGGER bench_${table}_${event.toLowerCase()} AFTER ${event} ON ${table} BEGIN UPDATE bench_row_writes SET n = n + 1; END;`,
      )
  const read = database.prepare('SELECT n FROM bench_row_writes')
  return {
    read: () => Number((read.get() as { n: number }).n),
    close: () => database.close(),
  }
}
