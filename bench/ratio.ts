/**
 * Prints, and records in `bench/results.json`, what the benches measured. Run by `npm run bench`.
 *
 * - `ratios` (bench/transport.bench.ts): what each `mppHttp()` bench costs against the `http()`
 *   bench of its group: `rate` is mppHttp's operations per second over http()'s (the goal on the
 *   unpaid path: at least 0.97, i.e. at most 3 % overhead).
 * - `session` (bench/session.bench.ts, whose tallies it merges from `bench/session-tallies.json`):
 *   per bench, paid calls per second (hz × callers, failed calls left out); their ratio to the
 *   unpaid calls of the same group (the goal for viem-mpp: at least 0.8), to the ceiling (one
 *   pre-signed voucher re-sent: the server's own cost), to `http() + Mppx.fetch` of the same
 *   group and to mppx's session manager (1 caller: it allows no more), and to viem-mpp with a
 *   memory store (for its `fileChannelStore` bench, the goal: at least 0.95); HTTP requests per paid
 *   call (the goal: 1.00); and the CPU time per paid call of the client's process and of the
 *   servers' process. See BENCHMARKS.md.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { SessionTally } from './session.bench.js'

type Benchmark = { name: string; hz: number; rme: number }
type Group = { fullName: string; benchmarks: Benchmark[] }
type Results = {
  files: { filepath: string; groups: Group[] }[]
  ratios?: unknown
  session?: unknown
}

const path = new URL('./results.json', import.meta.url)
const talliesPath = new URL('./session-tallies.json', import.meta.url)
const results = JSON.parse(readFileSync(path, 'utf8')) as Results
const groupName = ({ fullName }: Group) => fullName.replace(/^.* > /, '')
const groupsOf = (file: string) =>
  results.files.filter(({ filepath }) => filepath.endsWith(file)).flatMap(({ groups }) => groups)

results.ratios = groupsOf('transport.bench.ts').map((group) => {
  const hz = (name: string) => group.benchmarks.find((b) => b.name === name)?.hz ?? NaN
  const rate = hz('mppHttp()') / hz('http()')
  console.log(`${groupName(group)}: mppHttp() runs at ${rate.toFixed(3)} of http()'s rate`)
  return { group: groupName(group), rate: round(rate) }
})

if (existsSync(talliesPath)) {
  const tallies = JSON.parse(readFileSync(talliesPath, 'utf8')) as SessionTally[]
  const groups = groupsOf('session.bench.ts')
  const measured = tallies.map((tally) => {
    const group = groups.find((group) => groupName(group) === tally.group)
    const bench = group?.benchmarks.find(({ name }) => name === tally.name)
    const paid = tally.calls - tally.failed
    return {
      tally,
      rme: bench?.rme ?? NaN,
      callsPerSecond: ((bench?.hz ?? NaN) * tally.callers * paid) / tally.calls,
      paid,
    }
  })
  const rateOf = (client: SessionTally['client'], group?: string) =>
    measured.find(({ tally }) => tally.client === client && (!group || tally.group === group))
      ?.callsPerSecond ?? NaN
  const figures = measured.map(({ tally, rme, callsPerSecond, paid }) => ({
    group: tally.group,
    callers: tally.callers,
    name: tally.name,
    callsPerSecond: round(callsPerSecond),
    rme: round(rme),
    vsUnpaid: round(callsPerSecond / rateOf('unpaid', tally.group)),
    vsCeiling: round(callsPerSecond / rateOf('ceiling', tally.group)),
    vsMppxFetch: round(callsPerSecond / rateOf('mppxFetch', tally.group)),
    vsManager: round(callsPerSecond / rateOf('manager')),
    vsMemoryStore: round(callsPerSecond / rateOf('viemMpp', tally.group)),
    requestsPerCall: round(tally.requests / paid),
    clientCpuMsPerCall: round(tally.cpu / 1000 / paid),
    serverCpuMsPerCall: round(tally.serverCpu / 1000 / paid),
    calls: tally.calls,
    failed: tally.failed,
    ...(tally.error ? { error: tally.error } : {}),
  }))
  results.session = figures

  type Figure = (typeof figures)[number]
  const columns: [title: string, width: number, cell: (figure: Figure) => string][] = [
    ['client', 48, ({ name }) => name],
    ['calls/s', 9, ({ callsPerSecond }) => callsPerSecond.toFixed(1)],
    ['± %', 7, ({ rme }) => rme.toFixed(1)],
    ['× unpaid', 10, ({ vsUnpaid }) => vsUnpaid.toFixed(3)],
    ['× ceiling', 11, ({ vsCeiling }) => vsCeiling.toFixed(3)],
    ['× Mppx.fetch', 14, ({ vsMppxFetch }) => vsMppxFetch.toFixed(3)],
    ['× manager', 11, ({ vsManager }) => vsManager.toFixed(3)],
    ['× memory store', 16, ({ vsMemoryStore }) => vsMemoryStore.toFixed(3)],
    ['requests/call', 15, ({ requestsPerCall }) => requestsPerCall.toFixed(2)],
    ['client CPU ms', 15, ({ clientCpuMsPerCall }) => clientCpuMsPerCall.toFixed(2)],
    ['server CPU ms', 15, ({ serverCpuMsPerCall }) => serverCpuMsPerCall.toFixed(2)],
    ['failed', 10, ({ failed, calls }) => `${failed}/${calls}`],
  ]
  // The client's name is left-aligned, the figures right-aligned.
  const row = (cell: (column: (typeof columns)[number]) => string) =>
    `  ${columns.map((column, i) => (i ? cell(column).padStart(column[1]) : cell(column).padEnd(column[1]))).join('')}`
  for (const [index, figure] of figures.entries()) {
    if (figure.group !== figures[index - 1]?.group)
      console.log(`\n${figure.group} (CPU per paid call):\n${row(([title]) => title)}`)
    console.log(row(([, , cell]) => cell(figure)))
  }
  rmSync(talliesPath)
}
writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`)

function round(value: number) {
  return Number(value.toFixed(4))
}
