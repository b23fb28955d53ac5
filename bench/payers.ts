/**
 * Payer processes for the multi-process benches (bench/processes.ts, bench/fleet.ts): the
 * servers (bench/servers.ts, in a child process of their own), and payers (bench/payer.ts) let go
 * together and timed from that moment to the last one's result.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import type { Counters, Ready } from './servers.js'

/**
 * Starts bench/servers.ts: a localnet, an mppx session server in front of it, in a child process.
 *
 * @example
 * ```ts
 * const servers = await startServers()
 * servers.stop()
 * ```
 */
export async function startServers() {
  const child = fork(new URL('./servers.ts', import.meta.url), {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const ready = await new Promise<Ready>((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`bench/servers.ts exited (${code})`)))
  })
  return {
    ready,
    stop: () => child.send({ type: 'stop' }),
    /** The CPU time the servers' process has used so far (µs, user + system). */
    cpu: () =>
      new Promise<number>((resolve) => {
        child.once('message', (counters: Counters) => resolve(counters.cpu))
        child.send({ type: 'counters' })
      }),
  }
}

export type PayersRun = {
  ready: Ready
  /** `memory` (a store each, nothing shared), a `fileChannelStore` path, or a `redis://` URL. */
  store: string
  processes: number
  calls: number
  inFlight: number
  /** The round trip each request waits before it leaves (an endpoint across a network), ms. */
  roundTripMs: number
  /** More environment for the payers (the Redis store's prefix). */
  env?: Record<string, string> | undefined
  /** Runs once every payer is ready, just before they are let go (the timed window's start). */
  letGo?: (() => Promise<void>) | undefined
  /** Runs once every payer has its result, before any releases its channel. */
  measured?: (() => Promise<void>) | undefined
}

/**
 * Runs `processes` payers at once: each makes one call first (its channel opened or taken up
 * before anything is timed), then `calls` calls when let go. Resolves with the aggregate paid
 * calls per second and how many calls failed.
 *
 * @example
 * ```ts
 * const { callsPerSecond } = await runPayers({ ready, store: 'memory', processes: 4, calls: 40, inFlight: 1, roundTripMs: 0 })
 * ```
 */
export async function runPayers({
  ready,
  store,
  processes,
  calls,
  inFlight,
  roundTripMs,
  env = {},
  letGo,
  measured,
}: PayersRun): Promise<{ callsPerSecond: number; failed: number; machineBusy: number }> {
  const children = Array.from({ length: processes }, () =>
    spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        new URL('./payer.ts', import.meta.url).pathname,
        ready.paidUrl,
        ready.rpcUrl,
        String(ready.chainId),
        ready.privateKeys[1] ?? '',
        store,
        String(calls),
        String(inFlight),
        String(roundTripMs),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } },
    ),
  )
  const exited = children.map((child) => new Promise((resolve) => child.once('exit', resolve)))
  const lines = children.map(linesOf)
  for (const next of lines) if ((await next()) !== 'ready') throw new Error('a payer failed')
  await letGo?.()
  const busy = machineBusy()
  const start = performance.now()
  for (const child of children) child.stdin?.write('go\n')
  const done = await Promise.all(lines.map(async (next) => JSON.parse(await next())))
  const seconds = (performance.now() - start) / 1000
  const machine = busy()
  await measured?.()
  // Let go again: each releases its channel and exits.
  for (const child of children) child.stdin?.end()
  await Promise.all(exited)
  const failed = done.reduce((sum, { failed }) => sum + failed, 0)
  return {
    callsPerSecond: round((processes * calls - failed) / seconds),
    failed,
    machineBusy: machine,
  }
}

/**
 * How busy this machine's CPUs are between two reads of `/proc/stat` (Linux): the share of all
 * cores' time not idle. Call it once to start, and the function it returns to read.
 *
 * @example
 * ```ts
 * const busy = machineBusy()
 * await work()
 * console.log(busy()) // 0.97
 * ```
 */
export function machineBusy(): () => number {
  const read = () => {
    const [, ...fields] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
      .trim()
      .split(/\s+/)
    const ticks = fields.map(Number)
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0)
    return { total: ticks.reduce((sum, tick) => sum + tick, 0), idle }
  }
  const start = read()
  return () => {
    const end = read()
    return round(1 - (end.idle - start.idle) / (end.total - start.total || 1))
  }
}

/** The lines a child prints, one per call of the function returned. */
function linesOf(child: ChildProcess) {
  const iterator = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  return async () => {
    const { value, done } = await iterator.next()
    if (done) throw new Error('a payer ended early')
    return String(value)
  }
}

/** `value` to 4 decimals. */
export function round(value: number) {
  return Number(value.toFixed(4))
}

/** What a run of payers was: its store, how many processes, the round trip added (ms). */
export type RunShape = { store: string; processes: number; roundTripMs: number }

/**
 * The paid calls per second of the run of `shape` among `figures`; `NaN` if there is none, so that
 * a ratio with it shows as missing rather than as a figure.
 *
 * @example
 * ```ts
 * const ratio = rateOf(figures, { store: 'file', processes: 4, roundTripMs: 0 }) / rateOf(figures, { store: 'memory', processes: 4, roundTripMs: 0 })
 * ```
 */
export function rateOf(
  figures: readonly (RunShape & { callsPerSecond: number })[],
  { store, processes, roundTripMs }: RunShape,
): number {
  return (
    figures.find(
      (figure) =>
        figure.store === store &&
        figure.processes === processes &&
        figure.roundTripMs === roundTripMs,
    )?.callsPerSecond ?? Number.NaN
  )
}
