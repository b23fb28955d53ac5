/**
 * Prints, and records in `bench/results.json`, what each `mppHttp()` bench costs against the
 * `http()` bench of its group: `rate` is mppHttp's operations per second over http()'s (the goal
 * on the unpaid path: at least 0.97, i.e. at most 3 % overhead). Run by `npm run bench`.
 */
import { readFileSync, writeFileSync } from 'node:fs'

type Benchmark = { name: string; hz: number; rme: number }
type Results = {
  files: { groups: { fullName: string; benchmarks: Benchmark[] }[] }[]
  ratios?: unknown
}

const path = new URL('./results.json', import.meta.url)
const results = JSON.parse(readFileSync(path, 'utf8')) as Results
results.ratios = results.files.flatMap(({ groups }) =>
  groups.map(({ fullName, benchmarks }) => {
    const hz = (name: string) => benchmarks.find((benchmark) => benchmark.name === name)?.hz ?? NaN
    const rate = hz('mppHttp()') / hz('http()')
    const group = fullName.replace(/^.* > /, '')
    console.log(`${group}: mppHttp() runs at ${rate.toFixed(3)} of http()'s rate`)
    return { group, rate: Number(rate.toFixed(4)) }
  }),
)
writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`)
